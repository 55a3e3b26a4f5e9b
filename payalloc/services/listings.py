"""Read-only listings of clients, payments and remittances (one snapshot each)."""

from __future__ import annotations

import sqlite3
from typing import Any

from payalloc.errors import NotFound
from payalloc.ids import parse_id
from payalloc.ledger import listings as sql
from payalloc.ledger.connection import read_txn
from payalloc.ledger.payments import find_client, find_payment


def _client_id(conn: sqlite3.Connection, client_key: str) -> int:
    client_key = parse_id(client_key, "client_id")
    client = find_client(conn, client_key)
    if client is None:
        raise NotFound(f"client {client_key} is not in the ledger")
    return client.id


def _payment_id(conn: sqlite3.Connection, payment_key: str) -> int:
    payment_key = parse_id(payment_key, "payment_id")
    payment = find_payment(conn, payment_key)
    if payment is None:
        raise NotFound(f"payment {payment_key} is not in the ledger")
    return payment.id


def list_clients(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    with read_txn(conn):
        return sql.clients(conn)


def list_payments(
    conn: sqlite3.Connection, *, client: str | None = None, status: str | None = None, apply_to: str | None = None
) -> list[dict[str, Any]]:
    with read_txn(conn):
        client_id = _client_id(conn, client) if client else None
        return sql.payments(conn, client=client_id, status=status, apply_to=apply_to)


def list_remittances(
    conn: sqlite3.Connection, *, client: str | None = None, payment: str | None = None, status: str | None = None
) -> list[dict[str, Any]]:
    with read_txn(conn):
        client_id = _client_id(conn, client) if client else None
        payment_id = _payment_id(conn, payment) if payment else None
        return sql.remittances(conn, client=client_id, payment=payment_id, status=status)
