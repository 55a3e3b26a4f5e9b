"""Global options every command sees: which ledger, which staff, whether to show tracebacks."""

from __future__ import annotations

import contextlib
import getpass
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from payalloc.errors import UsageError


@dataclass
class State:
    db: Path = Path("payalloc.db")
    staff_name: str | None = None
    debug: bool = False
    # Set by a command run with --json: its fields for the object a refusal prints on stdout
    # (cli/__init__.py), so that a script piping it into jq gets JSON whatever happens.
    json_refusal: dict[str, Any] | None = None

    def connect(self) -> sqlite3.Connection:
        from payalloc.ledger.connection import open_ledger

        return open_ledger(self.db)

    @contextlib.contextmanager
    def ledger(self) -> Iterator[sqlite3.Connection]:
        """The ledger, open for one command and closed after it."""
        conn = self.connect()
        try:
            yield conn
        finally:
            conn.close()

    @property
    def staff(self) -> str:
        """--staff, else PAYALLOC_STAFF (both via Typer; set but empty is refused), else the login
        name. Each is held to the rule of ids: the audit trail and every export carry them as they
        are (the login name comes from LOGNAME or USER first, which anyone may set)."""
        from payalloc.ids import parse_id

        if self.staff_name is not None:  # blank too: refused, not replaced by a shared login unseen
            return parse_id(self.staff_name, "the staff name (--staff or PAYALLOC_STAFF)")
        if os.environ.get("PAYALLOC_STAFF") == "":  # Click reads a set but empty variable as unset
            raise empty_variable("PAYALLOC_STAFF", "give a staff name", "the login name")
        try:
            login = getpass.getuser()
        except (KeyError, OSError):
            return "unknown"
        return parse_id(login, "the login name (from LOGNAME or USER; give --staff instead)")


def empty_variable(name: str, give: str, default: str) -> UsageError:
    """A variable set but empty: most likely a script's own variable that was never set
    (PAYALLOC_STAFF=$CLERK), which must not quietly become the default (the service account)."""
    return UsageError(f"{name} is set but empty: {give}, or unset it to use {default}")


STATE = State()
