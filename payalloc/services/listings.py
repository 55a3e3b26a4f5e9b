"""Read-only listings of clients, payments and remittances (one snapshot each).

Each is a context manager: its rows stream from the ledger while the block reads them, all from
the snapshot of one read transaction."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

from payalloc.errors import InputError
from payalloc.ids import MAX_NAME_LENGTH, parse_id, parse_text
from payalloc.ledger import listings as sql
from payalloc.ledger.clients import known_client
from payalloc.ledger.connection import read_txn
from payalloc.ledger.payments import known_payment


def _client_id(conn: sqlite3.Connection, client_key: str | None) -> int | None:
    """The filter's client, held to the rule of ids like every other: trimmed, and an empty one refused
    (`--client "$ID"` with $ID unset must not list every client)."""
    if client_key is None:
        return None
    return known_client(conn, parse_id(client_key, "client_id")).id


def _payment_id(conn: sqlite3.Connection, payment_key: str | None) -> int | None:
    if payment_key is None:
        return None
    return known_payment(conn, parse_id(payment_key, "payment_id")).id


@contextlib.contextmanager
def list_clients(conn: sqlite3.Connection, *, name: str | None = None) -> Iterator[sql.Listing]:
    """The clients, or those whose name or responsible party holds `name` (a walk-in knows their
    name, not their id). An empty search is refused, not read as "every client"."""
    search = None if name is None else parse_text(name, "--name", MAX_NAME_LENGTH)
    if search is not None and not search:
        raise InputError("--name is empty: give part of a name to look for")
    with read_txn(conn):
        yield sql.clients(conn, search)


@contextlib.contextmanager
def list_payments(
    conn: sqlite3.Connection, *, client: str | None = None, status: str | None = None, apply_to: str | None = None
) -> Iterator[sql.Listing]:
    with read_txn(conn):
        client_id = _client_id(conn, client)
        yield sql.payments(conn, client=client_id, status=status, apply_to=apply_to)


@contextlib.contextmanager
def list_remittances(
    conn: sqlite3.Connection, *, client: str | None = None, payment: str | None = None, status: str | None = None
) -> Iterator[sql.Listing]:
    with read_txn(conn):
        client_id = _client_id(conn, client)
        payment_id = _payment_id(conn, payment)
        yield sql.remittances(conn, client=client_id, payment=payment_id, status=status)
