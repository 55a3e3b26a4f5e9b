"""The APPLY_CLIENT_PAYMENTS job: rule 4 (event payments), rule 2 (oldest payments), then
remittance processing (rule 6).

Crash safety. The work list is the clients marked `job_pending` (set by triggers whenever
something may give the job work). Clients are taken in id order, a chunk at a time; each chunk
is one BEGIN IMMEDIATE transaction that reads the chunk's open payments and charges, plans,
inserts the remittances, converts event payments, and clears `job_pending` for exactly those
clients. A chunk is therefore complete or absent: after a kill -9 the clients of the lost chunk
are still pending and the next run does them, with the same plan. Posting works the same way
over the ready remittances (the partial index `remittances_ready`). Before each chunk the job lets
any other waiting writer go first (ledger/writers.py), so a clerk's `apply` waits at most one
chunk (well under a second).

Overlap. The whole real run holds a kernel lock (flock) beside the ledger: a second run-job
exits 4 at once; the lock is released when the holder dies, and the next run marks the dead
run's record `interrupted`.

Dry run. Plans from one read snapshot with the same code, writes nothing, takes no lock and
records no run.
"""

from __future__ import annotations

import functools
import os
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from payalloc import allocation
from payalloc.dates import utc_now
from payalloc.errors import DISK_FULL_CAUSE, LedgerBusy, LedgerFull, PayallocError, Terminated
from payalloc.gcpause import cyclic_gc_paused
from payalloc.gl import missing_mappings, posting_lines
from payalloc.ledger import gl as gl_sql
from payalloc.ledger import job as sql
from payalloc.ledger import remittances as remittance_sql
from payalloc.ledger.connection import (
    busy_error,
    busy_timeout_ms,
    is_busy,
    is_full,
    job_lock,
    job_running,
    read_txn,
    write_txn,
)
from payalloc.ledger.payments import convert_to_specific
from payalloc.ledger.writers import JobTurns, job_turns
from payalloc.money import plain_cents

CLIENTS_PER_CHUNK = 1000
REMITTANCES_PER_CHUNK = 5000

class PlannedRemittance(NamedTuple):
    """A remittance a dry run would create, by external ids."""

    payment_id: str
    charge_id: str
    client_id: str
    amount_cents: int
    rule: str


class PlannedConversion(NamedTuple):
    """An event payment a dry run would make specific, by external ids."""

    payment_id: str
    client_id: str
    event_id: str
    event_status: str
    unapplied_cents: int


@dataclass
class JobResult:
    run_id: int | None = None
    dry_run: bool = False
    clients_checked: int = 0  # clients on the work list that were processed
    clients: int = 0  # clients that received at least one remittance
    remittances_created: int = 0
    amount_applied_cents: int = 0
    event_payments_converted: int = 0
    remittances_posted: int = 0
    amount_posted_cents: int = 0
    posting_batches: int = 0
    missing_mappings: list[str] = field(default_factory=list)
    interrupted: list[tuple[int, str]] = field(default_factory=list)  # (run_id, started_at) of stale runs
    warnings: list[str] = field(default_factory=list)
    # dry run only: what would be created, by external ids
    planned_remittances: list[PlannedRemittance] = field(default_factory=list)
    planned_conversions: list[PlannedConversion] = field(default_factory=list)

    def counts(self) -> dict[str, Any]:
        """The counts kept in job_runs.counts and printed by `run-job --json`: money as "1234.50"
        under its name without _cents."""
        return {name.removesuffix("_cents"): plain_cents(value) if name.endswith("_cents") else value
                for name, value in ((name, getattr(self, name)) for name in COUNTED)}

    @property
    def interrupted_runs(self) -> int:
        """Runs found 'running' by a process that died, and marked interrupted."""
        return len(self.interrupted)

    def add(self, other: JobResult) -> None:
        for name in COUNTED:
            setattr(self, name, getattr(self, name) + getattr(other, name))


# The counters of a JobResult, in the order run-job --json and job_runs.counts list them.
COUNTED = ("clients_checked", "clients", "remittances_created", "amount_applied_cents", "event_payments_converted",
           "remittances_posted", "amount_posted_cents", "posting_batches")


def missing_mapping_warning(missing: list[str], ready: int) -> str:
    what = f"{ready:,} remittance{' stays' if ready == 1 else 's stay'} ready"
    if len(missing) == 1:
        return (f"{what}: GL mapping {missing[0]} is not configured "
                f"(payalloc gl map {missing[0]} ACCOUNT)")
    return (f"{what}: GL mappings {' and '.join(missing)} are not configured "
            "(payalloc gl map KEY ACCOUNT)")


def run_job(
    conn: sqlite3.Connection,
    ledger_path: Path,
    now: str,
    *,
    dry_run: bool = False,
    clients_per_chunk: int = CLIENTS_PER_CHUNK,
    remittances_per_chunk: int = REMITTANCES_PER_CHUNK,
    clock: Callable[[], str] = utc_now,
) -> JobResult:
    """Run the job once (or plan it, with dry_run). Raises LedgerBusy if another run holds the ledger."""
    assert clients_per_chunk > 0 and remittances_per_chunk > 0
    if dry_run:
        return _dry_run(conn, clients_per_chunk, remittances_per_chunk)
    with job_lock(ledger_path), job_turns(conn, busy_timeout_ms() / 1000) as turns, cyclic_gc_paused():
        with write_txn(conn, turn=False):
            interrupted = sql.interrupt_stale_runs(conn, now)
            run_id = sql.insert_run(conn, now, os.getpid())
        result = JobResult(run_id=run_id, interrupted=interrupted)
        try:
            _apply_payments(conn, turns, result, run_id, now, clients_per_chunk)
            _post_remittances(conn, turns, result, run_id, now, remittances_per_chunk)
        except BaseException as error:
            status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
            _record_end(conn, run_id, clock(), status, result, _recorded(error))
            explained = _explain(error, result)
            if explained is not None:
                raise explained from None
            raise
        _record_end(conn, run_id, clock(), "done", result, None)
        return result


def _recorded(error: BaseException) -> str:
    """What job_runs.error keeps (and `payalloc jobs` shows): the sentences of SQLite and of payalloc,
    which quote no ledger text; of any other error only its kind, as the command line prints it (a
    bug's exception may quote a value from the ledger, a patient's name)."""
    return str(_shown(f"{type(error).__name__}: {error}"))


@functools.cache
def _safe_kinds() -> set[str]:
    kinds: set[str] = {Terminated.__name__}
    for base in (sqlite3.Error, PayallocError):
        todo: list[type] = [base]
        while todo:
            kind = todo.pop()
            kinds.add(kind.__name__)
            todo += kind.__subclasses__()
    return kinds


_ERROR_KIND = re.compile(r"([A-Za-z_][A-Za-z0-9_]*): ")


def _shown(error: str | None) -> str | None:
    """"Kind: text" with its text only for the kinds whose sentences are SQLite's or payalloc's own;
    also applied to what `jobs` shows, as runs recorded by an older payalloc kept any text."""
    kind = None if error is None else _ERROR_KIND.match(error)
    return error if kind is None or kind[1] in _safe_kinds() else kind[1]


def _is_busy(error: BaseException) -> bool:
    """The ledger stayed locked: at a chunk's BEGIN IMMEDIATE (write_txn raises LedgerBusy) or within it."""
    return isinstance(error, LedgerBusy) or (isinstance(error, sqlite3.OperationalError) and is_busy(error))


def _committed(result: JobResult) -> bool:
    return bool(result.clients_checked or result.remittances_posted)


def _explain(error: BaseException, result: JobResult) -> PayallocError | None:
    """The sentence for a run stopped by a locked ledger or a full disk. Once a chunk is committed,
    the generic "nothing was changed" / "nothing of it was written" would be false: say what stays.
    A locked ledger is always LedgerBusy, so that `run-job --json` can print it (exit 4)."""
    if _is_busy(error):
        return _busy_after(result) if _committed(result) else busy_error()
    if is_full(error) and _committed(result):
        return LedgerFull(f"{DISK_FULL_CAUSE}; {_stopped_after(result)}: free some space and run it again,"
                          " it carries on")
    return None


def _busy_after(result: JobResult) -> LedgerBusy:
    return LedgerBusy(
        f"the ledger stayed locked by another process for {busy_timeout_ms() / 1000:g} s; {_stopped_after(result)}:"
        " run it again to finish"
    )


def _stopped_after(result: JobResult) -> str:
    return (f"run-job stopped after committing {result.clients_checked:,} clients ({result.remittances_created:,}"
            f" remittances created, {result.remittances_posted:,} posted); the chunk in progress was rolled back")


def _record_end(
    conn: sqlite3.Connection, run_id: int, at: str, status: str, result: JobResult, error: str | None
) -> None:
    try:
        with write_txn(conn, turn=False):
            sql.finish_run(conn, run_id, finished_at=at, status=status, counts=result.counts(), error=error)
    except Exception:
        if status == "done":
            raise
        # Recording a failure must not hide the failure itself; the next run marks it interrupted.


def _record_counts(conn: sqlite3.Connection, run_id: int, result: JobResult, delta: JobResult) -> None:
    """In the chunk's transaction: the run's counts as they stand once this chunk commits."""
    totals = JobResult()
    totals.add(result)
    totals.add(delta)
    sql.update_run_counts(conn, run_id, totals.counts())


def _plan_chunk(conn: sqlite3.Connection, client_ids: list[int]) -> allocation.Plan:
    """Read everything the chunk needs (fetched in full before any write), then plan it."""
    payments = sql.open_payments(conn, client_ids)
    with_money = sorted({p.client_id for p in payments})
    charges = sql.open_charges(conn, with_money) if with_money else []
    return allocation.plan_job(payments, charges)


def _chunk_counts(client_ids: list[int], plan: allocation.Plan) -> JobResult:
    return JobResult(
        clients_checked=len(client_ids),
        clients=len(plan.clients),
        remittances_created=len(plan.allocations),
        amount_applied_cents=plan.amount_cents,
        event_payments_converted=len(plan.conversions),
    )


def _apply_payments(
    conn: sqlite3.Connection, turns: JobTurns, result: JobResult, run_id: int, now: str, chunk: int
) -> None:
    """Phases 1 and 2, one chunk of pending clients per transaction."""
    after = 0
    while True:
        turns.let_writers_in()
        with write_txn(conn, turn=False):
            client_ids = sql.marked_clients(conn, after, chunk)
            if not client_ids:
                break
            plan = _plan_chunk(conn, client_ids)
            sql.insert_remittances(conn, plan.allocations, run_id, now)
            convert_to_specific(conn, plan.conversions, staff=None, job_run_id=run_id, now=now)
            sql.clear_marks(conn, client_ids)
            delta = _chunk_counts(client_ids, plan)
            _record_counts(conn, run_id, result, delta)
        result.add(delta)  # only once the chunk is committed
        after = client_ids[-1]


def _post_remittances(
    conn: sqlite3.Connection, turns: JobTurns, result: JobResult, run_id: int, now: str, chunk: int
) -> None:
    """Phase 3 (rule 6): post every ready remittance, manual ones too, if the mappings exist."""
    with read_txn(conn):
        missing = missing_mappings(gl_sql.mappings(conn))
        ready = remittance_sql.count_ready(conn) if missing else 0  # only for the warning
    if missing:
        result.missing_mappings = missing
        if ready:
            result.warnings.append(missing_mapping_warning(missing, ready))
        return
    after = 0
    while True:
        turns.let_writers_in()
        with write_txn(conn, turn=False):
            mappings = gl_sql.mappings(conn)  # read in the transaction that uses them
            if missing_mappings(mappings):
                break
            rows = sql.ready_remittances(conn, after, chunk)
            if not rows:
                break
            lines = [line for rid, cents in rows for line in posting_lines(rid, cents, mappings)]
            sql.post_remittances(conn, [rid for rid, _ in rows], lines, run_id, now)
            delta = JobResult(
                remittances_posted=len(rows), amount_posted_cents=sum(c for _, c in rows), posting_batches=1
            )
            _record_counts(conn, run_id, result, delta)
        result.add(delta)
        after = rows[-1][0]


def _dry_run(conn: sqlite3.Connection, chunk: int, posting_chunk: int) -> JobResult:
    result = JobResult(dry_run=True)
    with read_txn(conn):
        after = 0
        while True:
            client_ids = sql.marked_clients(conn, after, chunk)
            if not client_ids:
                break
            plan = _plan_chunk(conn, client_ids)
            result.add(_chunk_counts(client_ids, plan))
            _describe(conn, plan, result)
            after = client_ids[-1]
        missing = missing_mappings(gl_sql.mappings(conn))
        ready, ready_cents = remittance_sql.ready_totals(conn)
    result.missing_mappings = missing
    if missing:
        if ready + result.remittances_created:
            result.warnings.append(missing_mapping_warning(missing, ready + result.remittances_created))
    else:
        result.remittances_posted = ready + result.remittances_created
        result.amount_posted_cents = ready_cents + result.amount_applied_cents
        result.posting_batches = -(-result.remittances_posted // posting_chunk)
    return result


def _describe(conn: sqlite3.Connection, plan: allocation.Plan, result: JobResult) -> None:
    """The plan by external ids, for people and scripts."""
    payments = sql.external_keys(
        conn, "payment", [a.payment_id for a in plan.allocations] + [c.payment_id for c in plan.conversions]
    )
    charges = sql.external_keys(conn, "charge", [a.charge_id for a in plan.allocations])
    clients = sql.external_keys(
        conn, "client", [a.client_id for a in plan.allocations] + [c.client_id for c in plan.conversions]
    )
    events = sql.external_keys(conn, "event", [c.event_id for c in plan.conversions])
    result.planned_remittances.extend(
        PlannedRemittance(payments[a.payment_id], charges[a.charge_id], clients[a.client_id], a.amount_cents, a.rule)
        for a in plan.allocations
    )
    result.planned_conversions.extend(
        PlannedConversion(payments[c.payment_id], clients[c.client_id], events[c.event_id], c.event_status,
                          c.unapplied_cents)
        for c in plan.conversions
    )


def list_runs(conn: sqlite3.Connection, limit: int | None, ledger_path: Path | None = None) -> list[dict[str, Any]]:
    """The recorded runs, newest first (the last `limit`; None: all). A run recorded 'running' while no process holds the
    run-job lock of `ledger_path` was killed (kill -9, SIGTERM, a reboot): it is shown as
    'interrupted', as the next run will record it, instead of 'running' until then."""
    with read_txn(conn):
        runs = sql.list_runs(conn, limit)
    for run in runs:
        run["error"] = _shown(run["error"])
    # Read, look at the lock, read again: a run that starts after the first read is not in it,
    # and one that finished before the probe is no longer 'running' in the second.
    if ledger_path is None or not any(r["status"] == "running" for r in runs) or job_running(ledger_path):
        return runs
    with read_txn(conn):
        now = {r["run_id"]: r for r in sql.list_runs(conn, limit)}
    runs = [now.get(r["run_id"], r) for r in runs]
    for run in runs:
        run["error"] = _shown(run["error"])
        if run["status"] == "running":
            run["status"] = "interrupted"
            run["error"] = run["error"] or sql.STALE_RUN_ERROR
    return runs
