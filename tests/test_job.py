"""The APPLY_CLIENT_PAYMENTS job through its service: rules 4 and 2, posting (rule 6), run records."""

from __future__ import annotations

import gc
import json
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payalloc.allocation import OpenCharge, OpenPayment
from payalloc.errors import LedgerBusy
from payalloc.ledger import job as job_sql
from payalloc.ledger.connection import init_ledger, job_lock, open_ledger, write_txn
from payalloc.services import events as event_service
from payalloc.services import gl as gl_service
from payalloc.services.job import list_runs, run_job
from tests.builders import add_charge, add_client, add_event, add_payment, assert_check_passes
from tests.test_allocation import reference

NOW = "2026-11-23T02:00:00Z"


def job(conn: sqlite3.Connection, path: Path, **kwargs: Any) -> Any:
    return run_job(conn, path, NOW, clock=lambda: "2026-11-23T02:00:05Z", **kwargs)


def add_manual(conn: sqlite3.Connection, payment: str, charge: str, amount_cents: int) -> None:
    """A clerk's remittance, straight into the ledger (the clerk service is tested elsewhere)."""
    with write_txn(conn):
        conn.execute(
            "INSERT INTO remittances (payment_id, charge_id, client_id, amount_cents, source, staff, created_at)"
            " SELECT p.id, c.id, p.client_id, ?, 'manual', 'clerk1', ? FROM payments p, charges c"
            " WHERE p.payment_key = ? AND c.charge_key = ?",
            (amount_cents, NOW, payment, charge),
        )


def job_remittances(conn: sqlite3.Connection) -> dict[tuple[str, str], tuple[int, str]]:
    rows = conn.execute(
        "SELECT p.payment_key, c.charge_key, r.amount_cents, r.rule FROM remittances r"
        " JOIN payments p ON p.id = r.payment_id JOIN charges c ON c.id = r.charge_id"
        " WHERE r.source = 'job' AND r.status <> 'reversed'"
    ).fetchall()
    out = {(p, c): (amount, rule) for p, c, amount, rule in rows}
    assert len(out) == len(rows), "one remittance per (payment, charge) pair"
    return out


def apply_to(conn: sqlite3.Connection, payment: str) -> str:
    return str(conn.execute("SELECT apply_to FROM payments WHERE payment_key = ?", (payment,)).fetchone()[0])


def pending(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT client_key FROM clients WHERE job_pending = 1 ORDER BY id")]


def map_gl(conn: sqlite3.Connection) -> None:
    gl_service.map_account(conn, "unapplied_default", "2150", now=NOW, staff="admin")
    gl_service.map_account(conn, "self_pay_ar", "1210", now=NOW, staff="admin")


# --- the job equals the reference model on generated ledgers -----------------------------------

DATES = [f"2026-01-{d:02d}" for d in range(1, 5)]


@st.composite
def ledger_specs(draw: st.DrawFn) -> dict[str, Any]:
    clients = [f"C{i}" for i in range(draw(st.integers(1, 4)))]
    events = [(f"E{i}", draw(st.sampled_from(clients)), draw(st.sampled_from(["scheduled", "done", "deleted"])))
              for i in range(draw(st.integers(0, 4)))]
    charges = []
    for i in range(draw(st.integers(0, 10))):
        client = draw(st.sampled_from(clients))
        own = [e for e, c, _ in events if c == client]
        charges.append((f"CH{i}", client, draw(st.sampled_from(DATES)), draw(st.integers(1, 30_000)),
                        draw(st.sampled_from(["self_pay", "patient_resp", "insurance"])),
                        draw(st.none() | st.sampled_from(own)) if own else None))
    payments = []
    for i in range(draw(st.integers(0, 8))):
        client = draw(st.sampled_from(clients))
        own = [e for e, c, _ in events if c == client]
        mode = draw(st.sampled_from(["oldest", "specific", "event"] if own else ["oldest", "specific"]))
        payments.append((f"P{i}", client, draw(st.sampled_from(DATES)), draw(st.integers(1, 50_000)), mode,
                         draw(st.sampled_from(own)) if mode == "event" else None,
                         draw(st.sampled_from(["ready", "ready", "pending"]))))
    # Clerks' allocations before the run: specific ready payments to self-pay charges of the client.
    manual = []
    for key, client, _, amount, mode, _, status in payments:
        if mode == "specific" and status == "ready":
            targets = [c for c in charges if c[1] == client and c[4] != "insurance"]
            if targets and draw(st.booleans()):
                manual.append((key, draw(st.sampled_from(targets))[0], draw(st.integers(1, amount))))
    return {"clients": clients, "events": events, "charges": charges, "payments": payments, "manual": manual,
            "chunk": draw(st.integers(1, 5))}


def build(conn: sqlite3.Connection, spec: dict[str, Any]) -> dict[str, Any]:
    """Insert the spec; returns the inputs of the reference model (what is open, by internal id)."""
    for c in spec["clients"]:
        add_client(conn, c)
    status = {}
    for key, client, st_ in spec["events"]:
        status[key] = st_
        add_event(conn, key, client, status=st_)
    ids: dict[str, int] = {}
    balance: dict[str, int] = {}
    for key, client, date, amount, payer, event in spec["charges"]:
        ids[key] = add_charge(conn, key, client, date, amount, payer, event)
        balance[key] = amount
    unapplied: dict[str, int] = {}
    for key, client, date, amount, mode, event, st_ in spec["payments"]:
        ids[key] = add_payment(conn, key, client, date, amount, mode, event, status=st_)
        unapplied[key] = amount
    for payment, charge, amount in spec["manual"]:
        amount = min(amount, unapplied[payment], balance[charge])
        if amount:
            add_manual(conn, payment, charge, amount)
            unapplied[payment] -= amount
            balance[charge] -= amount
    client_no = {c: i for i, c in enumerate(spec["clients"])}
    event_no = {e: i for i, (e, _, _) in enumerate(spec["events"])}
    open_payments = [
        OpenPayment(ids[key], client_no[client], date, unapplied[key], mode,
                    None if event is None else event_no[event], None if event is None else status[event])
        for key, client, date, _, mode, event, st_ in spec["payments"]
        if st_ == "ready" and mode != "specific" and unapplied[key]
    ]
    open_charges = [
        OpenCharge(ids[key], client_no[client], date, balance[key], None if event is None else event_no[event])
        for key, client, date, _, payer, event in spec["charges"]
        if payer != "insurance" and balance[key]
    ]
    return {"payments": open_payments, "charges": open_charges, "ids": ids}


@settings(max_examples=40)
@given(ledger_specs())
def test_job_equals_reference_model_on_generated_ledgers(spec: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.db"
        init_ledger(path)
        conn = open_ledger(path)
        try:
            model = build(conn, spec)
            expected, converted = reference(model["payments"], model["charges"])
            key = {v: k for k, v in model["ids"].items() if k.startswith("P")}
            ckey = {v: k for k, v in model["ids"].items() if k.startswith("CH")}

            result = job(conn, path, clients_per_chunk=spec["chunk"])

            assert job_remittances(conn) == {(key[p], ckey[c]): v for (p, c), v in expected.items()}
            assert result.remittances_created == len(expected)
            assert result.amount_applied_cents == sum(a for a, _ in expected.values())
            assert {p for p, _, _, _, mode, _, _ in spec["payments"] if apply_to(conn, p) != mode} == {
                key[p] for p, _ in converted
            }
            assert pending(conn) == []
            # Idempotent: the second run finds nothing to do.
            again = job(conn, path, clients_per_chunk=spec["chunk"])
            assert (again.clients_checked, again.remittances_created, again.event_payments_converted) == (0, 0, 0)
            assert len(job_remittances(conn)) == len(expected)
        finally:
            conn.close()


# --- rules 2 and 4 over several runs ---------------------------------------------------------

def test_leftover_credit_is_applied_when_new_charges_arrive(conn: sqlite3.Connection, ledger_path: Path) -> None:
    add_client(conn, "C1")
    add_client(conn, "C2")
    add_charge(conn, "CH1", "C1", "2026-01-05", 8000)
    add_charge(conn, "CH-INS", "C1", "2026-01-01", 9000, payer="insurance")
    add_payment(conn, "P1", "C1", "2026-01-10", 20000)  # overpayment: 120.00 stays as credit
    first = job(conn, ledger_path)
    assert job_remittances(conn) == {("P1", "CH1"): (8000, "oldest")}
    assert (first.clients_checked, first.clients, first.amount_applied_cents) == (1, 1, 8000)

    add_charge(conn, "CH2", "C1", "2026-02-01", 5000, payer="patient_resp")
    add_charge(conn, "CH3", "C1", "2026-02-01", 9000)
    assert pending(conn) == ["C1"]  # only the client with new work
    second = job(conn, ledger_path)
    assert job_remittances(conn) == {
        ("P1", "CH1"): (8000, "oldest"), ("P1", "CH2"): (5000, "oldest"), ("P1", "CH3"): (7000, "oldest"),
    }
    assert (second.clients_checked, second.remittances_created, second.amount_applied_cents) == (1, 2, 12000)
    row = conn.execute(
        "SELECT status, source, rule, staff, job_run_id, created_at FROM remittances ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert row == ("ready", "job", "oldest", None, second.run_id, NOW)
    assert conn.execute("SELECT applied_cents, amount_cents FROM payments").fetchone() == (20000, 20000)


def test_specific_and_pending_payments_are_never_applied(conn: sqlite3.Connection, ledger_path: Path) -> None:
    add_client(conn, "C1")
    add_charge(conn, "CH1", "C1", "2026-01-05", 8000)
    add_payment(conn, "P-SPEC", "C1", "2026-01-01", 1000, apply_to="specific")
    add_payment(conn, "P-PEND", "C1", "2026-01-01", 1000, status="pending")
    result = job(conn, ledger_path)
    assert result.remittances_created == 0 and job_remittances(conn) == {}
    assert pending(conn) == []


def test_event_payment_waits_for_its_charge_then_becomes_specific_when_done(
    conn: sqlite3.Connection, ledger_path: Path
) -> None:
    add_client(conn, "C1")
    add_event(conn, "E1", "C1", "2026-03-01")
    add_charge(conn, "CH-OLD", "C1", "2026-01-01", 4000)  # not from the event: never touched by P-EV
    add_payment(conn, "P-EV", "C1", "2026-02-20", 10000, apply_to="event", event="E1")
    job(conn, ledger_path)
    assert job_remittances(conn) == {} and apply_to(conn, "P-EV") == "event"

    add_charge(conn, "CH-EV", "C1", "2026-03-01", 6000, event="E1")
    job(conn, ledger_path)
    assert job_remittances(conn) == {("P-EV", "CH-EV"): (6000, "event")}
    assert apply_to(conn, "P-EV") == "event"  # the event is still scheduled: it stays attached

    event_service.mark_done(conn, "E1", now=NOW, staff="clerk1")
    assert pending(conn) == ["C1"]
    run = job(conn, ledger_path)
    assert run.event_payments_converted == 1 and run.remittances_created == 0
    assert apply_to(conn, "P-EV") == "specific"
    audit = conn.execute(
        "SELECT staff, action, payment_key, event_key, job_run_id, reason, detail FROM audit"
        " WHERE action = 'payment_apply_to_specific'"
    ).fetchall()
    assert len(audit) == 1
    staff, _, payment, event, run_id, reason, detail = audit[0]
    assert (staff, payment, event, run_id) == (None, "P-EV", "E1", run.run_id)
    assert "E1 is done" in reason and json.loads(detail)["unapplied"] == "40.00"
    # The rest waits for the clerk: later runs leave it alone.
    add_charge(conn, "CH-NEW", "C1", "2026-04-01", 9000)
    job(conn, ledger_path)
    assert ("P-EV", "CH-NEW") not in job_remittances(conn)


def test_event_done_by_import_converts_at_next_run_after_applying(conn: sqlite3.Connection, ledger_path: Path) -> None:
    add_client(conn, "C1")
    add_event(conn, "E1", "C1")
    add_payment(conn, "P-EV", "C1", "2026-01-01", 5000, apply_to="event", event="E1")
    add_payment(conn, "P-OLD", "C1", "2025-12-01", 5000)  # received earlier, but rule 4 goes first
    add_charge(conn, "CH1", "C1", "2026-01-10", 3000, event="E1")
    with write_txn(conn):  # what `import events` does for a row now marked done
        conn.execute("UPDATE events SET status = 'done' WHERE event_key = 'E1'")
    result = job(conn, ledger_path)
    assert job_remittances(conn) == {("P-EV", "CH1"): (3000, "event")}
    assert apply_to(conn, "P-EV") == "specific" and result.event_payments_converted == 1


def test_fully_applied_event_payment_stays_event(conn: sqlite3.Connection, ledger_path: Path) -> None:
    add_client(conn, "C1")
    add_event(conn, "E1", "C1", status="done")
    add_charge(conn, "CH1", "C1", "2026-01-10", 3000, event="E1")
    add_payment(conn, "P-EV", "C1", "2026-01-01", 3000, apply_to="event", event="E1")
    result = job(conn, ledger_path)
    assert result.event_payments_converted == 0 and apply_to(conn, "P-EV") == "event"


def test_reversal_marks_the_client_and_the_money_is_applied_again(conn: sqlite3.Connection, ledger_path: Path) -> None:
    add_client(conn, "C1")
    add_charge(conn, "CH1", "C1", "2026-01-05", 5000)
    add_payment(conn, "P-SPEC", "C1", "2026-01-01", 5000, apply_to="specific")
    add_payment(conn, "P1", "C1", "2026-01-10", 5000)
    add_manual(conn, "P-SPEC", "CH1", 5000)
    job(conn, ledger_path)
    assert job_remittances(conn) == {}
    with write_txn(conn):
        conn.execute("UPDATE remittances SET status = 'reversed', reversed_at = ?, reversed_by = 'clerk1',"
                     " reversal_reason = 'wrong charge' WHERE source = 'manual'", (NOW,))
    assert pending(conn) == ["C1"]
    job(conn, ledger_path)
    assert job_remittances(conn) == {("P1", "CH1"): (5000, "oldest")}


def test_chunks_cover_every_pending_client_once(conn: sqlite3.Connection, ledger_path: Path) -> None:
    for i in range(7):
        add_client(conn, f"C{i}")
        if i != 3:  # C3 has nothing to do: it is checked, cleared, and gets nothing
            add_charge(conn, f"CH{i}", f"C{i}", "2026-01-01", 1000 + i)
            add_payment(conn, f"P{i}", f"C{i}", "2026-01-02", 500)
    add_charge(conn, "CH3", "C3", "2026-01-01", 1000, payer="insurance")
    with write_txn(conn):
        conn.execute("UPDATE clients SET job_pending = 1")
    result = job(conn, ledger_path, clients_per_chunk=2)
    assert (result.clients_checked, result.clients, result.remittances_created) == (7, 6, 6)
    assert pending(conn) == []
    runs = list_runs(conn, 5)
    assert runs[0]["counts"]["clients_checked"] == 7 and runs[0]["status"] == "done"


@pytest.mark.parametrize("fail_at", [1, 3])
def test_a_lock_that_outlasts_the_timeout_mid_run_says_what_was_committed(
    conn: sqlite3.Connection, ledger_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: int
) -> None:
    """Chunks commit one by one: once some have, "nothing was changed" would be false."""
    for i in range(6):
        add_client(conn, f"C{i}")
        add_charge(conn, f"CH{i}", f"C{i}", "2026-01-01", 1000)
        add_payment(conn, f"P{i}", f"C{i}", "2026-01-02", 500)
    chunks = []
    real = job_sql.update_run_counts

    def locked_at_chunk(*args: Any) -> None:  # in the chunk's transaction, before its commit
        chunks.append(1)
        if len(chunks) == fail_at:
            raise sqlite3.OperationalError("database is locked")
        real(*args)

    def remittances() -> int:
        return int(conn.execute("SELECT count(*) FROM remittances").fetchone()[0])

    monkeypatch.setattr(job_sql, "update_run_counts", locked_at_chunk)
    if fail_at == 1:  # nothing committed: LedgerBusy all the same, which `run-job --json` reports
        with pytest.raises(LedgerBusy, match=r"stayed locked by another process for [0-9.]+ s; nothing was changed"):
            job(conn, ledger_path, clients_per_chunk=2)
        assert remittances() == 0
    else:
        with pytest.raises(LedgerBusy, match=r"run-job stopped after committing 4 clients \(4 remittances created,"
                                             r" 0 posted\); the chunk in progress was rolled back: run it again"):
            job(conn, ledger_path, clients_per_chunk=2)
        assert remittances() == 4  # two chunks of two clients; the third rolled back
    assert list_runs(conn, 1)[0]["status"] == "failed"
    monkeypatch.undo()
    job(conn, ledger_path, clients_per_chunk=2)
    assert remittances() == 6 and pending(conn) == []


# --- remittance processing (rule 6) ------------------------------------------------------------

def posted_ledger(conn: sqlite3.Connection) -> None:
    add_client(conn, "C1")
    add_client(conn, "C2")
    add_charge(conn, "CH1", "C1", "2026-01-05", 8000)
    add_charge(conn, "CH2", "C1", "2026-01-06", 8000)
    add_charge(conn, "CH3", "C2", "2026-01-06", 2550)
    add_payment(conn, "P1", "C1", "2026-01-10", 10000)
    add_payment(conn, "P2", "C2", "2026-01-10", 2550)
    add_payment(conn, "P-SPEC", "C1", "2026-01-11", 1234, apply_to="specific")
    add_manual(conn, "P-SPEC", "CH2", 1234)


def test_posting_waits_for_both_mappings(conn: sqlite3.Connection, ledger_path: Path) -> None:
    posted_ledger(conn)
    result = job(conn, ledger_path)
    assert result.missing_mappings == ["unapplied_default", "self_pay_ar"] and result.remittances_posted == 0
    assert result.warnings == [
        "4 remittances stay ready: GL mappings unapplied_default and self_pay_ar are not configured"
        " (payalloc gl map KEY ACCOUNT)"
    ]
    gl_service.map_account(conn, "unapplied_default", "2150", now=NOW, staff="admin")
    result = job(conn, ledger_path)
    assert result.warnings == [
        "4 remittances stay ready: GL mapping self_pay_ar is not configured (payalloc gl map self_pay_ar ACCOUNT)"
    ]
    assert conn.execute("SELECT count(*) FROM journal_lines").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM remittances WHERE status = 'ready'").fetchone()[0] == 4


def test_the_missing_mapping_warning_says_one_remittance_in_the_singular(
    conn: sqlite3.Connection, ledger_path: Path
) -> None:
    add_client(conn, "C1")
    add_charge(conn, "CH1", "C1", "2026-01-05", 8000)
    add_payment(conn, "P1", "C1", "2026-01-10", 3000)
    assert job(conn, ledger_path).warnings == [
        "1 remittance stays ready: GL mappings unapplied_default and self_pay_ar are not configured"
        " (payalloc gl map KEY ACCOUNT)"
    ]


def test_posting_writes_balanced_lines_for_every_ready_remittance(conn: sqlite3.Connection, ledger_path: Path) -> None:
    posted_ledger(conn)
    map_gl(conn)
    result = job(conn, ledger_path, remittances_per_chunk=3)
    assert result.remittances_created == 3 and result.remittances_posted == 4  # the manual one too
    assert result.amount_posted_cents == 10000 + 2550 + 1234 and result.posting_batches == 2
    assert conn.execute("SELECT count(*) FROM remittances WHERE status <> 'posted'").fetchone()[0] == 0
    batches = conn.execute("SELECT kind, job_run_id, staff FROM posting_batches").fetchall()
    assert batches == [("post", result.run_id, None)] * 2
    for rid, amount, batch in conn.execute("SELECT id, amount_cents, posted_batch_id FROM remittances"):
        lines = conn.execute(
            "SELECT batch_id, entry, account, debit_cents, credit_cents FROM journal_lines"
            " WHERE remittance_id = ? ORDER BY id", (rid,)
        ).fetchall()
        assert lines == [(batch, "post", "2150", amount, 0), (batch, "post", "1210", 0, amount)]
    debit, credit = conn.execute("SELECT sum(debit_cents), sum(credit_cents) FROM journal_lines").fetchone()
    assert debit == credit == 10000 + 2550 + 1234
    again = job(conn, ledger_path)
    assert again.remittances_posted == 0 and again.posting_batches == 0


# --- run records, overlap, dry run, failure ---------------------------------------------------

def test_overlapping_run_is_refused_at_once_and_records_nothing(conn: sqlite3.Connection, ledger_path: Path) -> None:
    posted_ledger(conn)
    with job_lock(ledger_path), pytest.raises(LedgerBusy, match="another run-job is running"):
        job(conn, ledger_path)
    assert conn.execute("SELECT count(*) FROM job_runs").fetchone()[0] == 0
    assert job(conn, ledger_path).remittances_created == 3  # the lock is free again


def test_stale_running_run_is_marked_interrupted(conn: sqlite3.Connection, ledger_path: Path) -> None:
    with write_txn(conn):
        job_sql.insert_run(conn, "2026-11-22T02:00:00Z", 999_999)
    result = job(conn, ledger_path)
    assert result.interrupted == [(1, "2026-11-22T02:00:00Z")] and result.interrupted_runs == 1
    runs = {r["run_id"]: r for r in list_runs(conn, 10)}
    # when it died is not known: no finish time, and the error says when it was found
    assert (runs[1]["status"], runs[1]["finished_at"], runs[1]["error"]) == (
        "interrupted", None, f"the run ended without recording how: killed, or it could not write its end (the ledger stayed locked or the disk was full) (found so at {NOW})")
    assert_check_passes(ledger_path)
    assert runs[result.run_id]["status"] == "done"
    assert runs[result.run_id]["started_at"] == NOW and runs[result.run_id]["finished_at"] == "2026-11-23T02:00:05Z"


def test_dry_run_writes_nothing_and_predicts_the_run(
    conn: sqlite3.Connection, ledger_path: Path, dump: Callable[[], list[str]]
) -> None:
    posted_ledger(conn)
    add_event(conn, "E1", "C2", status="done")
    add_payment(conn, "P-EV", "C2", "2026-01-12", 700, apply_to="event", event="E1")
    map_gl(conn)
    before = dump()
    plan = job(conn, ledger_path, dry_run=True)
    assert dump() == before
    assert plan.run_id is None and plan.dry_run
    assert set(plan.planned_remittances) == {
        ("P1", "CH1", "C1", 8000, "oldest"), ("P1", "CH2", "C1", 2000, "oldest"), ("P2", "CH3", "C2", 2550, "oldest"),
    }
    assert plan.planned_conversions == [("P-EV", "C2", "E1", "done", 700)]
    real = job(conn, ledger_path)
    assert real.counts() == plan.counts()


def test_failed_run_is_recorded_and_its_chunk_is_absent(
    conn: sqlite3.Connection, ledger_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    posted_ledger(conn)
    original = job_sql.clear_marks

    def boom(c: sqlite3.Connection, ids: Any) -> None:
        original(c, ids)
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(job_sql, "clear_marks", boom)
    with pytest.raises(RuntimeError):
        job(conn, ledger_path)
    assert conn.execute("SELECT count(*) FROM remittances WHERE source = 'job'").fetchone()[0] == 0
    assert pending(conn) == ["C1", "C2"]
    run = list_runs(conn, 1)[0]
    assert run["status"] == "failed" and run["error"] == "RuntimeError"  # a bug's text may quote the ledger
    monkeypatch.undo()
    assert job(conn, ledger_path).remittances_created == 3


@pytest.mark.parametrize("enabled", [True, False])
def test_run_job_leaves_the_garbage_collector_as_it_was(conn: sqlite3.Connection, ledger_path: Path,
                                                        enabled: bool) -> None:
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        add_client(conn, "C1")
        add_charge(conn, "CH1", "C1", "2026-01-05", 8000)
        add_payment(conn, "P1", "C1", "2026-01-10", 5000)
        assert job(conn, ledger_path).remittances_created == 1
        assert gc.isenabled() is enabled
        with job_lock(ledger_path), pytest.raises(LedgerBusy):
            run_job(conn, ledger_path, NOW)
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_a_lock_held_at_the_start_of_a_later_chunk_says_what_was_committed(
    conn: sqlite3.Connection, ledger_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The usual way the lock outlasts the timeout: another writer holds the ledger when a chunk
    begins (BEGIN IMMEDIATE, which write_txn turns into LedgerBusy), after two chunks committed."""
    from payalloc.ledger import writers

    for i in range(6):
        add_client(conn, f"C{i}")
        add_charge(conn, f"CH{i}", f"C{i}", "2026-01-01", 1000)
        add_payment(conn, f"P{i}", f"C{i}", "2026-01-02", 500)
    blocker = sqlite3.connect(ledger_path, isolation_level=None)
    turns: list[int] = []
    real = writers.JobTurns.let_writers_in

    def writer_takes_the_ledger(self: writers.JobTurns) -> None:
        real(self)
        turns.append(1)
        if len(turns) == 3:  # before the third chunk: chunks one and two have committed
            blocker.execute("BEGIN IMMEDIATE")

    monkeypatch.setattr(writers.JobTurns, "let_writers_in", writer_takes_the_ledger)
    monkeypatch.setenv("PAYALLOC_BUSY_TIMEOUT_MS", "50")  # each BEGIN IMMEDIATE waits this long in all
    try:
        with pytest.raises(LedgerBusy, match=r"run-job stopped after committing 4 clients \(4 remittances created,"):
            job(conn, ledger_path, clients_per_chunk=2)
    finally:
        blocker.close()
    assert conn.execute("SELECT count(*) FROM remittances").fetchone()[0] == 4


def test_a_jobs_listing_probing_the_lock_does_not_make_a_starting_run_job_fail(
    conn: sqlite3.Connection, ledger_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`payalloc jobs` tells whether a run is alive by taking the run-job lock for an instant
    (job_running): a run-job that starts in that instant must not exit 4 as if another ran."""
    import fcntl
    import os
    import threading

    from payalloc.ledger import connection

    add_client(conn, "C1")
    add_charge(conn, "CH1", "C1", "2026-01-01", 1000)
    add_payment(conn, "P1", "C1", "2026-01-02", 500)
    real_flock = fcntl.flock
    probed = threading.Event()

    def probe_in_between(fd: int, operation: int) -> None:
        if not probed.is_set():  # the job's first flock is job_lock's: a listing's probe holds the lock then
            probed.set()
            probe = os.open(str(ledger_path.resolve()) + ".lock", os.O_RDONLY)
            real_flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            threading.Timer(0.02, os.close, (probe,)).start()  # held a little longer than a probe
        real_flock(fd, operation)

    monkeypatch.setattr(connection.fcntl, "flock", probe_in_between)
    result = job(conn, ledger_path)
    assert result.remittances_created == 1


def test_a_run_that_finishes_while_jobs_looks_at_the_lock_is_not_shown_interrupted(
    conn: sqlite3.Connection, ledger_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read as 'running', then done and its lock released before the probe: it did not die."""
    from payalloc.services import job as job_service

    with write_txn(conn):
        conn.execute("INSERT INTO job_runs (started_at, status, pid) VALUES (?, 'running', 4242)", (NOW,))

    def finishes_first(path: Path) -> bool:
        with write_txn(conn):
            job_sql.finish_run(conn, 1, finished_at=NOW, status="done", counts={}, error=None)
        return False

    monkeypatch.setattr(job_service, "job_running", finishes_first)
    assert [(r["status"], r["error"]) for r in list_runs(conn, 10, ledger_path)] == [("done", None)]
