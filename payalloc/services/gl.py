"""General ledger: the account mappings posting needs (rule 6) and the posted journal."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

from payalloc.dates import parse_date
from payalloc.errors import InputError
from payalloc.gl import REQUIRED_MAPPINGS, missing_mappings
from payalloc.ids import parse_id
from payalloc.ledger import audit
from payalloc.ledger import gl as sql
from payalloc.ledger import remittances as remittance_sql
from payalloc.ledger.connection import read_txn, write_txn
from payalloc.ledger.listings import Listing

DESCRIPTIONS = {
    "unapplied_default": "liability for unapplied client payments (debited when a remittance posts)",
    "self_pay_ar": "self-pay receivable (credited when a remittance posts)",
}


def map_account(conn: sqlite3.Connection, key: str, account: str, *, now: str, staff: str) -> str | None:
    """Set the account of a GL mapping; returns the previous account, if any."""
    if key not in REQUIRED_MAPPINGS:
        raise InputError(f"GL mapping key '{key}' is not one of {', '.join(REQUIRED_MAPPINGS)}")
    account = parse_id(account, "account")
    with write_txn(conn):
        # The two accounts of rule 6 are the two sides of every posting: the same one for both
        # would make each journal entry debit and credit one account, a journal that says nothing.
        for row in sql.mapping_rows(conn):
            if row["key"] != key and row["account"] == account:
                raise InputError(f"account {account} is already mapped to {row['key']}; {key} must be a different"
                                 " account (posting debits one and credits the other)")
        previous = sql.upsert_mapping(conn, key, account, now, staff)
        if previous != account:
            audit.record(conn, at=now, staff=staff, action=audit.GL_MAP, reason=None,
                         detail={"key": key, "account": account, "previous": previous})
    return previous


@dataclass(frozen=True)
class GlStatus:
    mappings: list[dict[str, str | None]]  # key, account, updated_at, updated_by, description
    missing_mappings: list[str]
    ready_remittances: int
    ready_amount_cents: int
    journal_lines: int
    journal_debit_cents: int
    journal_credit_cents: int

    @property
    def posting_ready(self) -> bool:
        return not self.missing_mappings

    @property
    def balanced(self) -> bool:
        return self.journal_debit_cents == self.journal_credit_cents


def show(conn: sqlite3.Connection) -> GlStatus:
    """The mappings, whether posting is ready, what waits to be posted, and the journal's totals."""
    with read_txn(conn):
        rows = {row["key"]: row for row in sql.mapping_rows(conn)}
        ready, ready_cents = remittance_sql.ready_totals(conn)
        lines, debit, credit = sql.journal_totals(conn)
    mappings = [
        {"key": key, "account": rows[key]["account"] if key in rows else None,
         "updated_at": rows[key]["updated_at"] if key in rows else None,
         "updated_by": rows[key]["updated_by"] if key in rows else None,
         "description": DESCRIPTIONS[key]}
        for key in REQUIRED_MAPPINGS
    ]
    missing = missing_mappings({k: r["account"] for k, r in rows.items()})
    return GlStatus(mappings, missing, ready, ready_cents, lines, debit, credit)


@contextlib.contextmanager
def export(conn: sqlite3.Connection, since: str | None = None) -> Iterator[Listing]:
    """The posted journal (posting and reversing lines), streamed from one snapshot inside the block."""
    day = None if since is None else parse_date(since)
    with read_txn(conn):
        yield sql.journal(conn, day)
