"""SQL about clients shared by several use cases."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from payalloc.ids import known


@dataclass(frozen=True)
class Client:
    id: int
    key: str
    name: str
    responsible_party: str | None


def find_client(conn: sqlite3.Connection, client_key: str) -> Client | None:
    """The client of this external id, through its UNIQUE key."""
    row = conn.execute(
        "SELECT id, client_key, name, responsible_party FROM clients WHERE client_key = ?", (client_key,)
    ).fetchone()
    return None if row is None else Client(*row)


def known_client(conn: sqlite3.Connection, client_key: str) -> Client:
    """The client of this id, or NotFound naming the id: "client C-9 is not in the ledger"."""
    return known(find_client(conn, client_key), "client", client_key)


def mark_for_job(conn: sqlite3.Connection, client_ids: Iterable[int]) -> None:
    """Tell the next run-job that these clients may have work (a new self-pay charge, a new
    ready oldest/event payment). Every path that INSERTs such a charge or payment calls this
    in the same transaction; updates of payments, events and remittances are marked by triggers."""
    conn.execute(
        "UPDATE clients SET job_pending = 1 WHERE id IN (SELECT value FROM json_each(?)) AND job_pending = 0",
        (json.dumps(list(set(client_ids))),),
    )
