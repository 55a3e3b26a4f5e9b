"""Dates are exactly YYYY-MM-DD and real calendar days; timestamps are UTC with a Z."""

from __future__ import annotations

import datetime as dt
import re

from payalloc.errors import InputError

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)


class DateError(InputError):
    """Text that is not a YYYY-MM-DD date."""


def parse_date(text: str) -> str:
    """Return the date unchanged (ISO text sorts correctly), or raise DateError saying why."""
    value = text.strip(" \t")
    # fromisoformat alone would also take 20260131 and week dates (Python 3.11).
    if not _DATE.fullmatch(value):
        raise DateError(f"'{text}' is not a date in the format YYYY-MM-DD")
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise DateError(f"'{text}' is not a real calendar date (YYYY-MM-DD)") from None
    return value


def utc_now() -> str:
    """Now, as stored in the ledger: 2026-11-23T02:00:00Z."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def days_between(earlier: str, later: str) -> int:
    return (dt.date.fromisoformat(later) - dt.date.fromisoformat(earlier)).days
