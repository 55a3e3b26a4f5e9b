"""External ids (client_id, charge_id, payment_id, event_id): 1-64 printable characters."""

from __future__ import annotations

from payalloc.errors import InputError

MAX_ID_LENGTH = 64


def parse_id(text: str, what: str = "id") -> str:
    """Trim surrounding white space; refuse empty, over-long or non-printable ids."""
    value = text.strip()
    if not value:
        raise InputError(f"{what} is empty")
    if len(value) > MAX_ID_LENGTH:
        raise InputError(f"{what} is longer than {MAX_ID_LENGTH} characters")
    if not value.isprintable():
        raise InputError(f"{what} contains control or invisible characters")
    return value
