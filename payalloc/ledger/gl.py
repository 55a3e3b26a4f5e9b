"""SQL of the general ledger: account mappings and the posted journal."""

from __future__ import annotations

import sqlite3
from typing import Any

from payalloc.ledger.listings import Listing, from_cursor


def mappings(conn: sqlite3.Connection) -> dict[str, str]:
    return {key: account for key, account in conn.execute("SELECT key, account FROM gl_mappings")}


def mapping_rows(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return [
        {"key": key, "account": account, "updated_at": at, "updated_by": by}
        for key, account, at, by in conn.execute(
            "SELECT key, account, updated_at, updated_by FROM gl_mappings ORDER BY key"
        )
    ]


def upsert_mapping(conn: sqlite3.Connection, key: str, account: str, now: str, staff: str) -> str | None:
    """Set KEY's account; returns the previous account (None when the key was not mapped)."""
    row = conn.execute("SELECT account FROM gl_mappings WHERE key = ?", (key,)).fetchone()
    conn.execute(
        "INSERT INTO gl_mappings (key, account, updated_at, updated_by) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (key) DO UPDATE SET account = excluded.account, updated_at = excluded.updated_at,"
        " updated_by = excluded.updated_by",
        (key, account, now, staff),
    )
    return None if row is None else str(row[0])


def journal_totals(conn: sqlite3.Connection) -> tuple[int, int, int]:
    """(lines, total debit, total credit) of the whole journal."""
    row = conn.execute(
        "SELECT count(*), coalesce(sum(debit_cents), 0), coalesce(sum(credit_cents), 0) FROM journal_lines"
    ).fetchone()
    return int(row[0]), int(row[1]), int(row[2])


def journal(conn: sqlite3.Connection, since: str | None) -> Listing:
    """The posted journal, line by line in the order written; `since` filters on the batch date."""
    cursor = conn.execute(
        "SELECT j.id AS line_id, j.batch_id, b.created_at AS batch_created_at, j.entry, j.remittance_id,"
        " p.payment_key AS payment_id, ch.charge_key AS charge_id, cl.client_key AS client_id, j.account,"
        " j.debit_cents, j.credit_cents"
        " FROM journal_lines j JOIN posting_batches b ON b.id = j.batch_id"
        " JOIN remittances r ON r.id = j.remittance_id JOIN payments p ON p.id = r.payment_id"
        " JOIN charges ch ON ch.id = r.charge_id JOIN clients cl ON cl.id = r.client_id"
        " WHERE ? IS NULL OR b.created_at >= ? ORDER BY j.id",
        (since, since),
    )
    return from_cursor(cursor)