"""External ids (client_id, charge_id, payment_id, event_id): 1-64 printable characters; and the
free text a clerk types (notes, reasons)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TypeVar

from payalloc.errors import InputError, NotFound

T = TypeVar("T")

MAX_ID_LENGTH = 64
MAX_NAME_LENGTH = 200  # a name, a responsible party, a reference, a payer name
MAX_TEXT_LENGTH = 4000  # a note, a reason, a description: a paragraph, not a file pasted in


# An amount with its dollar sign or currency set apart by a space ("$ 5", "5.00 USD"): a number
# typed wrong, not prose. Digits on both sides of a space (a phone or record number) are prose.
_SPACED_AMOUNT = re.compile(r"(?:\$|USD)?[ \t]?[0-9][0-9,.]*[ \t]?(?:\$|USD)?", re.ASCII | re.IGNORECASE)
# What a message says in place of a cell it does not quote: a whole sentence all the same.
NOT_SHOWN = "the value (not shown: it may be a name)"


def prose(cell: str) -> bool:
    """A cell with white space inside: a name, a description or a note in the wrong column (columns
    swapped in an export), never a code or a number typed wrong. A message does not quote it:
    health data must not reach the cron mail or a log; line and column say where it is."""
    text = cell.strip()
    return any(char.isspace() for char in text) and not _SPACED_AMOUNT.fullmatch(text)


def quoted(cell: str, limit: int = 40) -> str:
    """A cell as a message names it: 'its text' (at most `limit` characters), or NOT_SHOWN if prose."""
    return NOT_SHOWN if prose(cell) else f"'{cell[:limit]}'"


def named(what: str, key: str) -> str:
    """"payment P-1" in a message, or "payment" alone when the key reads as prose (prose())."""
    return what if prose(key) else f"{what} {key}"


def some(noun: str, keys: Sequence[str], shown: int = 5) -> str:
    """"payment P-1", "payments P-1 and P-2", "payments P-1, ..., P-5 and 3 more": ids a warning is
    about, the first `shown` of them. One that reads as prose is counted, not shown (as named())."""
    names = [key for key in keys[:shown] if not prose(key)]
    plural = noun if len(keys) == 1 else f"{noun}s"
    more = len(keys) - len(names)
    if not names:
        return f"{len(keys):,} {plural}"
    if more:
        return f"{plural} {', '.join(names)} and {more:,} more"
    return f"{plural} {' and '.join([', '.join(names[:-1]), names[-1]] if len(names) > 1 else names)}"


def unknown(what: str, key: str) -> str:
    """"client C-9 is not in the ledger": the sentence of an id looked up in vain. One that reads as
    a name (prose()) is not repeated, but the sentence says why it names none."""
    if prose(key):
        return f"{what} given is not in the ledger (not repeated here: it reads like a name, not an id)"
    return f"{what} {key} is not in the ledger"


def known(found: T | None, what: str, key: str) -> T:
    """What a look-up by id found, or NotFound saying the id is not in the ledger (unknown())."""
    if found is None:
        raise NotFound(unknown(what, key))
    return found


def unquoted(error: Exception, cell: str) -> str:
    """Why a cell was refused, without the cell itself when it is prose."""
    return str(error).replace(f"'{cell}'", NOT_SHOWN, 1) if prose(cell) else str(error)


def parsed(parse: Callable[..., T], cell: str, *args: str) -> T:
    """parse(cell, *args), refused as it refuses but without the cell when it is prose (unquoted)."""
    try:
        return parse(cell, *args)
    except InputError as error:
        raise InputError(unquoted(error, cell)) from None


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


def parse_text(text: str, what: str, limit: int = MAX_TEXT_LENGTH) -> str:
    """Free text from the command line (a note, a reason), trimmed; may be empty. Controls are
    kept (every display strips them), but bytes that were not UTF-8, which Python hands over as
    surrogates, are refused: SQLite cannot store them (it was an internal error, exit 1)."""
    value = text.strip()
    if any("\ud800" <= char <= "\udfff" for char in value):
        raise InputError(f"{what} is not UTF-8 text; check the encoding of the terminal or script that gave it")
    if len(value) > limit:
        raise InputError(f"{what} is longer than {limit} characters")
    return value


def parse_reason(text: str, hint: str = "say why, it is kept in the audit trail") -> str:
    """--reason of a correction (unapply, reallocate, void): free text that may not be empty."""
    reason = parse_text(text, "--reason")
    if not reason:
        raise InputError(f"--reason must not be empty: {hint}")
    return reason
