"""SQL about clients shared by several use cases."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable


def mark_for_job(conn: sqlite3.Connection, client_ids: Iterable[int]) -> None:
    """Tell the next run-job that these clients may have work (a new self-pay charge, a new
    ready oldest/event payment). Every path that INSERTs such a charge or payment calls this
    in the same transaction; updates of payments, events and remittances are marked by triggers."""
    conn.execute(
        "UPDATE clients SET job_pending = 1 WHERE id IN (SELECT value FROM json_each(?)) AND job_pending = 0",
        (json.dumps(list(set(client_ids))),),
    )
