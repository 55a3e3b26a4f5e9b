"""Small ledger builders for tests: rows straight into a ledger, by external id.

They use raw SQL inside write_txn so that tests of one service do not depend on another.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from payalloc.ledger.clients import mark_for_job
from payalloc.ledger.connection import open_ledger, write_txn
from payalloc.services.check import check_ledger


def _id(conn: sqlite3.Connection, table: str, key_column: str, key: str | None) -> int | None:
    if key is None:
        return None
    row = conn.execute(f"SELECT id FROM {table} WHERE {key_column} = ?", (key,)).fetchone()
    assert row is not None, f"{table} {key} not found"
    return int(row[0])


def add_client(conn: sqlite3.Connection, key: str, name: str | None = None, responsible_party: str | None = None) -> int:
    with write_txn(conn):
        cur = conn.execute(
            "INSERT INTO clients (client_key, name, responsible_party) VALUES (?, ?, ?)",
            (key, name or f"Client {key}", responsible_party),
        )
    return int(cur.lastrowid or 0)


def add_event(conn: sqlite3.Connection, key: str, client: str, date: str = "2026-01-10", status: str = "scheduled") -> int:
    with write_txn(conn):
        cur = conn.execute(
            "INSERT INTO events (event_key, client_id, scheduled_date, status) VALUES (?, ?, ?, ?)",
            (key, _id(conn, "clients", "client_key", client), date, status),
        )
    return int(cur.lastrowid or 0)


def add_charge(
    conn: sqlite3.Connection,
    key: str,
    client: str,
    date: str,
    amount_cents: int,
    payer: str = "self_pay",
    event: str | None = None,
    code: str | None = "90834",
) -> int:
    with write_txn(conn):
        cur = conn.execute(
            "INSERT INTO charges (charge_key, client_id, service_date, amount_cents, payer, service_code, event_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key, _id(conn, "clients", "client_key", client), date, amount_cents, payer, code,
             _id(conn, "events", "event_key", event)),
        )
        if payer != "insurance":
            mark_for_job(conn, [_id(conn, "clients", "client_key", client) or 0])
    return int(cur.lastrowid or 0)


def add_payment(
    conn: sqlite3.Connection,
    key: str,
    client: str,
    date: str,
    amount_cents: int,
    apply_to: str = "oldest",
    event: str | None = None,
    status: str = "ready",
    note: str | None = None,
    method: str | None = "check",
    reference: str | None = None,
) -> int:
    with write_txn(conn):
        cur = conn.execute(
            "INSERT INTO payments (payment_key, client_id, received_date, amount_cents, apply_to, entered_apply_to,"
            " event_id, method, status, note, reference) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key, _id(conn, "clients", "client_key", client), date, amount_cents, apply_to, apply_to,
             _id(conn, "events", "event_key", event), method, status, note, reference),
        )
        if status == "ready" and apply_to != "specific":
            mark_for_job(conn, [_id(conn, "clients", "client_key", client) or 0])
    return int(cur.lastrowid or 0)


def assert_check_passes(db: Path) -> None:
    """`payalloc check` finds nothing wrong with the ledger file `db` (in process)."""
    conn = open_ledger(db)
    try:
        report = check_ledger(conn)
    finally:
        conn.close()
    assert report.ok, [v.message for v in report.violations]
