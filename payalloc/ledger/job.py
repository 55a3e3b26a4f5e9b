"""SQL of the APPLY_CLIENT_PAYMENTS job: its work list, its reads, its writes, its run records.

Sets of clients or rows are passed as one JSON array (`json_each`), so a statement's text never
depends on the data and SQLite looks each id up in an index.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from payalloc.allocation import Allocation, OpenCharge, OpenPayment
from payalloc.gl import JournalLine
from payalloc.ledger.bulk import insert_rows

# What a run found 'running' with no process left is marked with: it was killed, or its end could
# not be written (its own stderr, in that night's cron mail, said why).
STALE_RUN_ERROR = ("the run ended without recording how: killed, or it could not write its end"
                   " (the ledger stayed locked or the disk was full)")


# --- job runs -----------------------------------------------------------------------------

def interrupt_stale_runs(conn: sqlite3.Connection, now: str) -> list[tuple[int, str]]:
    """Marks the runs left 'running' by a process that died, and returns their (id, started_at) by id.
    Only call while holding the job lock. When it died is not known: finished_at stays empty, and the
    error says when it was found so."""
    rows = conn.execute(
        "UPDATE job_runs SET status = 'interrupted', error = coalesce(error, ?) WHERE status = 'running'"
        " RETURNING id, started_at",
        (f"{STALE_RUN_ERROR} (found so at {now})",),
    ).fetchall()
    return sorted((int(run_id), str(started)) for run_id, started in rows)


def insert_run(conn: sqlite3.Connection, now: str, pid: int) -> int:
    cur = conn.execute(
        "INSERT INTO job_runs (started_at, status, pid) VALUES (?, 'running', ?)", (now, pid)
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def update_run_counts(conn: sqlite3.Connection, run_id: int, counts: dict[str, Any]) -> None:
    conn.execute("UPDATE job_runs SET counts = ? WHERE id = ?", (json.dumps(counts, sort_keys=True), run_id))


def finish_run(
    conn: sqlite3.Connection,
    run_id: int,
    *,
    finished_at: str,
    status: str,
    counts: dict[str, Any],
    error: str | None = None,
) -> None:
    conn.execute(
        "UPDATE job_runs SET finished_at = ?, status = ?, counts = ?, error = ? WHERE id = ?",
        (finished_at, status, json.dumps(counts, sort_keys=True), error, run_id),
    )


def list_runs(conn: sqlite3.Connection, limit: int | None) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT id, started_at, finished_at, status, pid, counts, error FROM job_runs"
        " ORDER BY id DESC LIMIT ?",
        (-1 if limit is None else limit,),  # SQLite: a negative LIMIT is none
    ).fetchall()
    out = []
    for run_id, started, finished, status, pid, counts, error in rows:
        try:
            parsed = json.loads(counts)
        except ValueError:
            parsed = {}
        out.append({
            "run_id": run_id, "started_at": started, "finished_at": finished, "status": status,
            "pid": pid, "counts": parsed if isinstance(parsed, dict) else {}, "error": error,
        })
    return out


# --- phases 1 and 2: the work list and one chunk --------------------------------------------

def marked_clients(conn: sqlite3.Connection, after_id: int, limit: int) -> list[int]:
    """The next clients marked job_pending, by id (the partial index clients_job_pending)."""
    return [
        row[0]
        for row in conn.execute(
            "SELECT id FROM clients WHERE job_pending = 1 AND id > ? ORDER BY id LIMIT ?", (after_id, limit)
        )
    ]


def open_payments(conn: sqlite3.Connection, client_ids: Sequence[int]) -> list[OpenPayment]:
    """Ready oldest/event payments with money unapplied (the partial index payments_open)."""
    rows = conn.execute(
        "SELECT p.id, p.client_id, p.received_date, p.amount_cents - p.applied_cents, p.apply_to,"
        " iif(p.apply_to = 'event', p.event_id, NULL), e.status"  # an oldest payment may keep an event
        " FROM payments p LEFT JOIN events e ON e.id = p.event_id AND p.apply_to = 'event'"
        " WHERE p.client_id IN (SELECT value FROM json_each(?))"
        " AND p.status = 'ready' AND p.applied_cents < p.amount_cents AND p.apply_to IN ('oldest', 'event')",
        (json.dumps(list(client_ids)),),
    ).fetchall()
    return list(map(OpenPayment._make, rows))


def open_charges(conn: sqlite3.Connection, client_ids: Sequence[int]) -> list[OpenCharge]:
    """Self-pay charges (self_pay, patient_resp) with a balance left."""
    rows = conn.execute(
        "SELECT id, client_id, service_date, amount_cents - applied_cents, event_id FROM charges"
        " WHERE client_id IN (SELECT value FROM json_each(?))"
        " AND payer <> 'insurance' AND applied_cents < amount_cents",
        (json.dumps(list(client_ids)),),
    ).fetchall()
    return list(map(OpenCharge._make, rows))


def insert_remittances(
    conn: sqlite3.Connection, allocations: Sequence[Allocation], run_id: int, now: str
) -> None:
    """Insert a chunk's remittances and add them to the payments' and charges' caches.

    10 rows per statement: the guard trigger runs per row and costs the same either way (a 20,000-
    client run takes as long as with 250), and a statement tracer (the crash tests' kill hook)
    is handed the whole statement's text again at each trigger run: 25x less text to build."""
    insert_rows(
        conn,
        "INSERT INTO remittances (payment_id, charge_id, client_id, amount_cents, source, rule, job_run_id,"
        " created_at)", 8,
        [(a.payment_id, a.charge_id, a.client_id, a.amount_cents, "job", a.rule, run_id, now) for a in allocations],
        step=10,
    )
    add_to_caches(conn, allocations)


def add_to_caches(conn: sqlite3.Connection, allocations: Sequence[Allocation]) -> None:
    """Add job remittances to their payments' and charges' applied totals.

    Job remittances have no per-row cache trigger (migration_0002.sql): one update per payment
    and per charge of the chunk costs a fraction of the trigger's two updates per remittance.
    The caches' CHECK (applied_cents <= amount_cents) refuses an over-allocation here.
    """
    by_payment: dict[int, int] = defaultdict(int)
    by_charge: dict[int, int] = defaultdict(int)
    for a in allocations:
        by_payment[a.payment_id] += a.amount_cents
        by_charge[a.charge_id] += a.amount_cents
    conn.executemany("UPDATE payments SET applied_cents = applied_cents + ? WHERE id = ?",
                     [(cents, pid) for pid, cents in by_payment.items()])
    conn.executemany("UPDATE charges SET applied_cents = applied_cents + ? WHERE id = ?",
                     [(cents, cid) for cid, cents in by_charge.items()])


def clear_marks(conn: sqlite3.Connection, client_ids: Sequence[int]) -> None:
    conn.execute(
        "UPDATE clients SET job_pending = 0 WHERE id IN (SELECT value FROM json_each(?)) AND job_pending = 1",
        (json.dumps(list(client_ids)),),
    )


# --- phase 3: remittance processing ---------------------------------------------------------

def ready_remittances(conn: sqlite3.Connection, after_id: int, limit: int) -> list[tuple[int, int]]:
    """(id, amount_cents) of ready remittances by id (the partial index remittances_ready)."""
    return [
        (row[0], row[1])
        for row in conn.execute(
            "SELECT id, amount_cents FROM remittances WHERE status = 'ready' AND id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        )
    ]


def post_remittances(
    conn: sqlite3.Connection,
    remittance_ids: Sequence[int],
    lines: Sequence[JournalLine],
    run_id: int | None,
    now: str,
) -> int:
    """One posting batch: its journal lines, and the remittances marked posted. Returns the batch id."""
    cur = conn.execute(
        "INSERT INTO posting_batches (kind, job_run_id, staff, created_at) VALUES ('post', ?, NULL, ?)",
        (run_id, now),
    )
    batch_id = cur.lastrowid
    assert batch_id is not None
    insert_rows(
        conn, "INSERT INTO journal_lines (batch_id, remittance_id, entry, account, debit_cents, credit_cents)", 6,
        [(batch_id, ln.remittance_id, ln.entry, ln.account, ln.debit_cents, ln.credit_cents) for ln in lines],
    )
    cur = conn.execute(
        "UPDATE remittances SET status = 'posted', posted_batch_id = ?"
        " WHERE id IN (SELECT value FROM json_each(?)) AND status = 'ready'",
        (batch_id, json.dumps(list(remittance_ids))),
    )
    assert cur.rowcount == len(remittance_ids), "a ready remittance changed under the job's transaction"
    return batch_id


# --- external keys, to show a plan to people ------------------------------------------------

_KEY_QUERIES = {
    "payment": "SELECT id, payment_key FROM payments WHERE id IN (SELECT value FROM json_each(?))",
    "charge": "SELECT id, charge_key FROM charges WHERE id IN (SELECT value FROM json_each(?))",
    "client": "SELECT id, client_key FROM clients WHERE id IN (SELECT value FROM json_each(?))",
    "event": "SELECT id, event_key FROM events WHERE id IN (SELECT value FROM json_each(?))",
}


def external_keys(conn: sqlite3.Connection, kind: str, ids: Sequence[int]) -> dict[int, str]:
    """Internal id -> external id (client_id, payment_id, ...) for a set of rows of one kind."""
    query = _KEY_QUERIES[kind]  # an allowlist: no SQL text comes from input
    return {row[0]: row[1] for row in conn.execute(query, (json.dumps(sorted(set(ids))),))}
