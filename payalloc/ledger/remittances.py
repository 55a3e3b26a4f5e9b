"""SQL for remittances: look-ups, manual inserts, and the one shared way to reverse one.

Callers run inside `write_txn`; the triggers keep the payments' and charges' `applied_cents`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from payalloc.errors import CheckFailed, InputError, NotFound
from payalloc.gl import JournalLine, reversing_lines


@dataclass(frozen=True)
class RemittanceRow:
    id: int
    payment_id: int
    payment_key: str
    charge_id: int
    charge_key: str
    client_id: int
    client_key: str
    amount_cents: int
    status: str
    source: str
    rule: str | None
    staff: str | None
    job_run_id: int | None
    created_at: str
    replaces_id: int | None
    posted_batch_id: int | None
    reversed_at: str | None
    reversed_by: str | None
    reversal_reason: str | None


_REMITTANCE_SELECT = (
    "SELECT r.id, r.payment_id, p.payment_key, r.charge_id, ch.charge_key, r.client_id, c.client_key,"
    " r.amount_cents, r.status, r.source, r.rule, r.staff, r.job_run_id, r.created_at, r.replaces_id,"
    " r.posted_batch_id, r.reversed_at, r.reversed_by, r.reversal_reason"
    " FROM remittances r JOIN payments p ON p.id = r.payment_id JOIN charges ch ON ch.id = r.charge_id"
    " JOIN clients c ON c.id = r.client_id"
)


def _remittance(row: tuple[object, ...]) -> RemittanceRow:
    return RemittanceRow(*row)  # type: ignore[arg-type]


def find_remittance(conn: sqlite3.Connection, remittance_id: int) -> RemittanceRow | None:
    row = conn.execute(_REMITTANCE_SELECT + " WHERE r.id = ?", (remittance_id,)).fetchone()
    return None if row is None else _remittance(row)


def live_remittance(conn: sqlite3.Connection, remittance_id: int) -> RemittanceRow:
    """The remittance of this id, refused if it is not in the ledger or is already reversed."""
    remittance = find_remittance(conn, remittance_id)
    if remittance is None:
        raise NotFound(f"remittance {remittance_id} is not in the ledger")
    if remittance.status == "reversed":
        raise InputError(f"remittance {remittance_id} is already reversed (on {remittance.reversed_at})")
    return remittance


def count_ready(conn: sqlite3.Connection) -> int:
    """How many remittances are ready: read from the partial index alone (ready_totals reads
    every ready row's amount)."""
    return int(conn.execute("SELECT count(*) FROM remittances WHERE status = 'ready'").fetchone()[0])


def ready_totals(conn: sqlite3.Connection) -> tuple[int, int]:
    """How many remittances are ready to post, and their total in cents."""
    row = conn.execute(
        "SELECT count(*), coalesce(sum(amount_cents), 0) FROM remittances WHERE status = 'ready'"
    ).fetchone()
    return int(row[0]), int(row[1])


def remittances_of_payment(conn: sqlite3.Connection, payment_id: int) -> list[RemittanceRow]:
    rows = conn.execute(_REMITTANCE_SELECT + " WHERE r.payment_id = ? ORDER BY r.id", (payment_id,)).fetchall()
    return [_remittance(r) for r in rows]


# Through the client's payments: there is no index of remittances by client.
_REMITTANCES_OF_CLIENT = (
    _REMITTANCE_SELECT + " WHERE r.payment_id IN (SELECT id FROM payments WHERE client_id = ?) ORDER BY r.id"  # noqa: S608
)


def remittances_of_client(conn: sqlite3.Connection, client_id: int) -> list[RemittanceRow]:
    rows = conn.execute(_REMITTANCES_OF_CLIENT, (client_id,)).fetchall()
    return [_remittance(r) for r in rows]


def insert_manual(
    conn: sqlite3.Connection,
    *,
    payment_id: int,
    charge_id: int,
    client_id: int,
    amount_cents: int,
    staff: str,
    now: str,
    replaces_id: int | None = None,
) -> int:
    """A clerk's allocation: a `ready` remittance, source manual, with who made it."""
    cur = conn.execute(
        "INSERT INTO remittances (payment_id, charge_id, client_id, amount_cents, status, source, staff,"
        " created_at, replaces_id) VALUES (?, ?, ?, ?, 'ready', 'manual', ?, ?, ?)",
        (payment_id, charge_id, client_id, amount_cents, staff, now, replaces_id),
    )
    return int(cur.lastrowid or 0)


def new_reverse_batch(conn: sqlite3.Connection, *, staff: str | None, now: str) -> int:
    cur = conn.execute(
        "INSERT INTO posting_batches (kind, staff, created_at) VALUES ('reverse', ?, ?)", (staff, now)
    )
    return int(cur.lastrowid or 0)


def reverse_remittance(
    conn: sqlite3.Connection,
    remittance_id: int,
    *,
    staff: str | None,
    reason: str,
    now: str,
    batch_id: int | None = None,
) -> RemittanceRow:
    """Reverse one remittance (rule 5); the money is unapplied again (the triggers update the caches).

    A posted remittance also gets reversing journal lines — the mirror of its own 'post' lines, so
    the accounts are those it was posted to — in `batch_id`, or in a new 'reverse' batch.
    Returns the remittance as it was before. Refuses an unknown or already reversed remittance.
    """
    assert conn.in_transaction, "reverse_remittance runs inside the caller's write transaction"
    remittance = live_remittance(conn, remittance_id)
    if remittance.status == "posted":
        posted = [
            JournalLine(remittance_id, "post", account, debit, credit)
            for account, debit, credit in conn.execute(
                "SELECT account, debit_cents, credit_cents FROM journal_lines"
                " WHERE remittance_id = ? AND entry = 'post' ORDER BY id",
                (remittance_id,),
            )
        ]
        if not posted:
            raise CheckFailed(f"posted remittance {remittance_id} has no journal lines to reverse; nothing was"
                              " changed: run payalloc check")
        if batch_id is None:
            batch_id = new_reverse_batch(conn, staff=staff, now=now)
        conn.executemany(
            "INSERT INTO journal_lines (batch_id, remittance_id, entry, account, debit_cents, credit_cents)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(batch_id, x.remittance_id, x.entry, x.account, x.debit_cents, x.credit_cents)
             for x in reversing_lines(posted)],
        )
    conn.execute(
        "UPDATE remittances SET status = 'reversed', reversed_at = ?, reversed_by = ?, reversal_reason = ?"
        " WHERE id = ?",
        (now, staff, reason, remittance_id),
    )
    return remittance
