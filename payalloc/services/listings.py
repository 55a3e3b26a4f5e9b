"""Read-only listings of clients, payments and remittances (one snapshot each)."""

from __future__ import annotations

import sqlite3
from typing import Any

from payalloc.ledger import listings as sql
from payalloc.ledger.connection import read_txn

REMITTANCE_STATUSES = ("ready", "posted", "reversed")
PAYMENT_STATUSES = ("ready", "pending", "void")
APPLY_TO = ("oldest", "specific", "event")


def list_clients(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    with read_txn(conn):
        return sql.clients(conn)


def list_payments(
    conn: sqlite3.Connection, *, client: str | None = None, status: str | None = None, apply_to: str | None = None
) -> list[dict[str, Any]]:
    with read_txn(conn):
        client_id = sql.client_id(conn, client) if client else None
        return sql.payments(conn, client=client_id, status=status, apply_to=apply_to)


def list_remittances(
    conn: sqlite3.Connection, *, client: str | None = None, payment: str | None = None, status: str | None = None
) -> list[dict[str, Any]]:
    with read_txn(conn):
        client_id = sql.client_id(conn, client) if client else None
        payment_id = sql.payment_id(conn, payment) if payment else None
        return sql.remittances(conn, client=client_id, payment=payment_id, status=status)
