"""SQL of CSV import. Lists of keys travel as one JSON parameter (json_each), so every
statement is a constant string: no SQL is ever built from file content."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from payalloc.ledger.bulk import insert_rows

# Per kind: the table, and the query of existing rows by external key (key first).
_EXISTING = {
    "clients": "SELECT client_key, id, name, responsible_party FROM clients"
               " WHERE client_key IN (SELECT value FROM json_each(?))",
    "events": "SELECT event_key, id, client_id, scheduled_date, status FROM events"
              " WHERE event_key IN (SELECT value FROM json_each(?))",
    "charges": "SELECT charge_key, id, client_id, service_date, amount_cents, payer, service_code, description,"
               " event_id FROM charges WHERE charge_key IN (SELECT value FROM json_each(?))",
    "payments": "SELECT payment_key, id, client_id, received_date, amount_cents, entered_apply_to, event_id,"
                " method, reference, note, payer_name, status, apply_to FROM payments"
                " WHERE payment_key IN (SELECT value FROM json_each(?))",
}
_MAX_ID = {
    "clients": "SELECT coalesce(max(id), 0) FROM clients",
    "events": "SELECT coalesce(max(id), 0) FROM events",
    "charges": "SELECT coalesce(max(id), 0) FROM charges",
    "payments": "SELECT coalesce(max(id), 0) FROM payments",
}
# Per kind: the head of the INSERT (ledger/bulk.py adds the VALUES) and its width.
_INSERT = {
    "clients": ("INSERT INTO clients (client_key, name, responsible_party)", 3),
    "events": ("INSERT INTO events (event_key, client_id, scheduled_date, status)", 4),
    "charges": ("INSERT INTO charges (charge_key, client_id, service_date, amount_cents, payer, service_code,"
                " description, event_id)", 8),
    "payments": ("INSERT INTO payments (payment_key, client_id, received_date, amount_cents, apply_to,"
                 " entered_apply_to, event_id, method, reference, status, note, payer_name)", 12),
}


def max_id(conn: sqlite3.Connection, kind: str) -> int:
    return int(conn.execute(_MAX_ID[kind]).fetchone()[0])


def existing(conn: sqlite3.Connection, kind: str, keys: Iterable[str]) -> dict[str, tuple[Any, ...]]:
    """Rows already in the ledger for these keys: key -> (id, other columns...)."""
    rows = conn.execute(_EXISTING[kind], (json.dumps(list(keys)),)).fetchall()
    return {row[0]: tuple(row[1:]) for row in rows}


def insert(conn: sqlite3.Connection, kind: str, rows: Sequence[tuple[Any, ...]]) -> None:
    head, width = _INSERT[kind]
    insert_rows(conn, head, width, rows)


def client_ids(conn: sqlite3.Connection, keys: Iterable[str]) -> dict[str, int]:
    rows = conn.execute(
        "SELECT client_key, id FROM clients WHERE client_key IN (SELECT value FROM json_each(?))",
        (json.dumps(list(keys)),),
    )
    return {key: id_ for key, id_ in rows}


def events_by_key(conn: sqlite3.Connection, keys: Iterable[str]) -> dict[str, tuple[int, int, str]]:
    """event key -> (id, client id, status)."""
    rows = conn.execute(
        "SELECT event_key, id, client_id, status FROM events WHERE event_key IN (SELECT value FROM json_each(?))",
        (json.dumps(list(keys)),),
    )
    return {key: (id_, client, status) for key, id_, client, status in rows}


def update_clients(conn: sqlite3.Connection, rows: Sequence[tuple[str, str | None, int]]) -> None:
    conn.executemany("UPDATE clients SET name = ?, responsible_party = ? WHERE id = ?", rows)


def mark_events_done(conn: sqlite3.Connection, ids: Sequence[int]) -> None:
    conn.executemany("UPDATE events SET status = 'done' WHERE id = ? AND status = 'scheduled'", [(i,) for i in ids])


def mark_payments_ready(conn: sqlite3.Connection, ids: Sequence[int]) -> None:
    conn.executemany("UPDATE payments SET status = 'ready' WHERE id = ? AND status = 'pending'", [(i,) for i in ids])


def savepoint(conn: sqlite3.Connection) -> None:
    conn.execute("SAVEPOINT import_batch")


def release(conn: sqlite3.Connection) -> None:
    conn.execute("RELEASE import_batch")


def rollback_to_savepoint(conn: sqlite3.Connection) -> None:
    conn.execute("ROLLBACK TO import_batch")
    conn.execute("RELEASE import_batch")
