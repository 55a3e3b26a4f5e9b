"""Money as integer cents: the only module that knows what money looks like as text.

Accepted: ``1234.5``, ``1234.50``, ``1,234.50``, ``$1,234.50`` (ASCII only).
Refused: more than two decimals, exponents, NaN/inf, signs, ``12,50``, non-ASCII digits.
"""

from __future__ import annotations

import re

from payalloc.errors import InputError

# One dollar sign, then digits grouped by commas in threes or not grouped at all, then at
# most two decimals. re.ASCII: \d would otherwise match Arabic-Indic and full-width digits.
_NUMBER = r"(?:[1-9][0-9]{0,2}(?:,[0-9]{3})+|[1-9][0-9]*|0)"
_MONEY = re.compile(r"\$?(?P<int>" + _NUMBER + r")(?:\.(?P<frac>[0-9]{1,2}))?", re.ASCII)
# Refused, but for a reason worth naming: a minus sign, or a third decimal (a fraction of a cent).
_NEGATIVE = re.compile(r"(?:-\$?|\$-)" + _NUMBER + r"(?:\.[0-9]+)?", re.ASCII)
_SUB_CENT = re.compile(r"\$?" + _NUMBER + r"\.[0-9]{3,}", re.ASCII)
_DECIMAL_COMMA = re.compile(r"\$?[0-9]+,[0-9]{1,2}", re.ASCII)  # 12,50: a European decimal comma
MAX_CENTS = 1_000_000_000_00  # $1,000,000,000.00: far above any real payment, far below 2**63


class MoneyError(InputError):
    """Text that is not an amount of money."""


def parse_cents(text: str) -> int:
    """Parse a positive amount to integer cents, or raise MoneyError saying why."""
    m = _MONEY.fullmatch(text.strip(" \t"))
    if m is None:
        if not text.strip():
            raise MoneyError("amount is empty")
        if _NEGATIVE.fullmatch(text.strip(" \t")):
            raise MoneyError(f"'{text}' is negative: an amount must be greater than 0.00")
        if _SUB_CENT.fullmatch(text.strip(" \t")):
            raise MoneyError(f"'{text}' has more than 2 decimals: an amount is in whole cents, like 1,234.50")
        if _DECIMAL_COMMA.fullmatch(text.strip(" \t")):
            raise MoneyError(f"'{text}' is not an amount like 1,234.50: a comma only groups thousands,"
                             " cents come after a point")
        raise MoneyError(f"'{text}' is not an amount like 1,234.50")
    cents = int(m["int"].replace(",", "")) * 100 + int((m["frac"] or "0").ljust(2, "0"))
    if cents == 0:
        raise MoneyError("amount must be greater than 0.00")
    if cents > MAX_CENTS:
        raise MoneyError(f"amount {format_cents(cents)} is larger than {format_cents(MAX_CENTS)}")
    return cents


def format_cents(cents: int) -> str:
    """1,234.50 — for tables and messages."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{whole:,}.{frac:02d}"


def plain_cents(cents: int) -> str:
    """1234.50 — for JSON and CSV (always a string there, never a number)."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{whole}.{frac:02d}"
