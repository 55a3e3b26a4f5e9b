"""What the clerk sees: the unallocated bucket, client show, payment show, the audit trail."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator

import pytest

from payalloc.errors import InputError, NotFound
from payalloc.ledger.connection import write_txn
from payalloc.services import clerk, payments, views
from tests.builders import add_charge, add_client, add_event, add_payment
from tests.test_payments import NOW

TODAY = "2026-11-23T10:00:00Z"


@pytest.fixture
def ledger(conn: sqlite3.Connection) -> sqlite3.Connection:
    # C-1: a specific payment with money left and a self-pay balance: the clerk must act.
    add_client(conn, "C-1", "Ann")
    add_charge(conn, "C1-A", "C-1", "2026-10-01", 10000)
    add_charge(conn, "C1-B", "C-1", "2026-09-01", 4000, payer="patient_resp")
    add_charge(conn, "C1-I", "C-1", "2026-08-01", 9000, payer="insurance")
    add_payment(conn, "P1", "C-1", "2026-11-13", 6000, apply_to="specific", note="for October")
    add_payment(conn, "P1V", "C-1", "2026-11-01", 9999, apply_to="specific", status="void")
    # C-2: an oldest payment waiting for the job (credit, no charges): not the clerk's work.
    add_client(conn, "C-2", "Bob")
    add_payment(conn, "P2", "C-2", "2026-10-24", 2500, apply_to="oldest")
    # C-3: only a pending payment.
    add_client(conn, "C-3", "Cy")
    add_charge(conn, "C3-A", "C-3", "2026-10-01", 1000)
    add_payment(conn, "P3", "C-3", "2026-11-20", 1000, apply_to="specific", status="pending")
    # C-4: fully allocated: not in the bucket.
    add_client(conn, "C-4", "Di")
    add_charge(conn, "C4-A", "C-4", "2026-10-01", 1000)
    add_payment(conn, "P4", "C-4", "2026-11-01", 1000, apply_to="specific")
    clerk.apply_pairs(conn, "P4", ["C4-A=10"], now=NOW, staff="clerk1")
    # C-5: specific money left but nothing to apply it to: waits, but no action possible.
    add_client(conn, "C-5", "Ed")
    add_payment(conn, "P5", "C-5", "2026-11-22", 700, apply_to="specific")
    # C-6: the clerk must act too, waiting longer than C-1.
    add_client(conn, "C-6", "Fay")
    add_charge(conn, "C6-A", "C-6", "2026-10-01", 1000)
    add_payment(conn, "P6a", "C-6", "2026-11-03", 500, apply_to="specific")
    add_payment(conn, "P6b", "C-6", "2026-11-10", 300, apply_to="oldest", status="pending")
    return conn


def test_unallocated_rows_fields_and_order(ledger: sqlite3.Connection) -> None:
    rows = [e.as_json() for e in views.unallocated(ledger, now=TODAY)]
    assert [r["client_id"] for r in rows] == ["C-6", "C-1", "C-2", "C-5"]
    assert rows[1] == {
        "client_id": "C-1", "name": "Ann", "total_payments": "60.00", "unallocated": "60.00",
        "charges_balance": "140.00", "needs_clerk": True, "days_waiting": 10, "pending": "0.00",
    }
    assert rows[0]["total_payments"] == "8.00"  # pending money counts in the total of payments
    assert rows[0]["unallocated"] == "5.00"  # but is not allocatable yet
    assert rows[0]["pending"] == "3.00"
    assert rows[2] == {
        "client_id": "C-2", "name": "Bob", "total_payments": "25.00", "unallocated": "25.00",
        "charges_balance": "0.00", "needs_clerk": False, "days_waiting": 30, "pending": "0.00",
    }
    assert (rows[3]["needs_clerk"], rows[3]["days_waiting"]) == (False, 1)


def test_unallocated_all_adds_pending_only_clients(ledger: sqlite3.Connection) -> None:
    rows = views.unallocated(ledger, now=TODAY, include_pending=True)
    assert [e.client_key for e in rows] == ["C-6", "C-1", "C-2", "C-5", "C-3"]
    c3 = rows[-1].as_json()
    assert (c3["unallocated"], c3["pending"], c3["days_waiting"], c3["needs_clerk"]) == ("0.00", "10.00", None, False)


def test_unallocated_needs_clerk_only(ledger: sqlite3.Connection) -> None:
    assert [e.client_key for e in views.unallocated(ledger, now=TODAY, needs_clerk_only=True)] == ["C-6", "C-1"]


def test_the_bucket_follows_each_step_of_the_clerk(ledger: sqlite3.Connection) -> None:
    def c1() -> views.BucketEntry | None:
        return next((e for e in views.unallocated(ledger, now=TODAY) if e.client_key == "C-1"), None)

    result = clerk.apply_pairs(ledger, "P1", ["C1-B=40", "C1-A=15"], now=NOW, staff="clerk1")
    entry = c1()
    assert entry is not None
    assert (entry.unallocated_cents, entry.charges_balance_cents, entry.needs_clerk) == (500, 8500, True)
    clerk.apply_pairs(ledger, "P1", ["C1-A=5"], now=NOW, staff="clerk1")
    assert c1() is None  # fully allocated: off the list
    clerk.unapply(ledger, result.applied[0].remittance_id, reason="x", now=NOW, staff="clerk1")
    entry = c1()
    assert entry is not None and (entry.unallocated_cents, entry.charges_balance_cents) == (4000, 12000)
    payments.void_payment(ledger, "P1", reason="NSF", now=NOW, staff="clerk1")
    assert c1() is None


def test_client_show_has_the_row_detail(ledger: sqlite3.Connection) -> None:
    clerk.apply_pairs(ledger, "P1", ["C1-A=10"], now=NOW, staff="clerk1")
    d = views.client_detail(ledger, " C-1 ")
    data = d.as_json()
    assert (data["total_payments"], data["unallocated"], data["charges_balance"], data["needs_clerk"]) == (
        "60.00", "50.00", "130.00", True)
    assert [(p["payment_id"], p["status"], p["unapplied"], p["note"]) for p in data["payments"]] == [
        ("P1V", "void", "99.99", None), ("P1", "ready", "50.00", "for October")]
    # Open self-pay charges oldest first; insurance apart and not allocatable.
    assert [(c["charge_id"], c["payer"], c["balance"]) for c in data["open_charges"]] == [
        ("C1-B", "patient_resp", "40.00"), ("C1-A", "self_pay", "90.00")]
    assert [(c["charge_id"], c["allocatable"]) for c in data["insurance_charges"]] == [("C1-I", False)]
    assert [(r["payment_id"], r["charge_id"], r["amount"], r["source"], r["staff"]) for r in data["remittances"]] == [
        ("P1", "C1-A", "10.00", "manual", "clerk1")]


def test_client_show_figures_match_the_bucket(ledger: sqlite3.Connection) -> None:
    for entry in views.unallocated(ledger, now=TODAY, include_pending=True):
        d = views.client_detail(ledger, entry.client_key)
        assert (d.total_cents, d.unallocated_cents, d.charges_balance_cents, d.pending_cents, d.needs_clerk) == (
            entry.total_cents, entry.unallocated_cents, entry.charges_balance_cents, entry.pending_cents,
            entry.needs_clerk)


def test_client_show_unknown(ledger: sqlite3.Connection) -> None:
    with pytest.raises(NotFound, match="client C-404 is not in the ledger"):
        views.client_detail(ledger, "C-404")


def test_payment_show_says_where_each_remittance_came_from(ledger: sqlite3.Connection) -> None:
    r = clerk.apply_pairs(ledger, "P1", ["C1-A=10"], now=NOW, staff="clerk1").applied[0].remittance_id
    kept = clerk.unapply(ledger, r, reason="half", amount="4", now=NOW, staff="clerk2").kept_id
    with write_txn(ledger):
        run = ledger.execute("INSERT INTO job_runs (started_at, status) VALUES (?, 'done')", (NOW,)).lastrowid
        ledger.execute("UPDATE payments SET apply_to = 'oldest' WHERE payment_key = 'P1'")
        ledger.execute(
            "INSERT INTO remittances (payment_id, charge_id, client_id, amount_cents, source, rule, job_run_id,"
            " created_at) SELECT p.id, c.id, p.client_id, 100, 'job', 'oldest', ?, ? FROM payments p, charges c"
            " WHERE p.payment_key = 'P1' AND c.charge_key = 'C1-B'", (run, NOW))
    data = views.payment_detail(ledger, "P1").as_json()
    assert (data["payment_id"], data["note"], data["apply_to"], data["entered_apply_to"]) == (
        "P1", "for October", "oldest", "specific")
    assert [(x["id"], x["status"], x["origin"], x["reversal_reason"]) for x in data["remittances"]] == [
        (r, "reversed", "clerk1", "half"),
        (kept, "ready", f"clerk2, rest of #{r}", None),
        (kept + 1, "ready", f"job run {run} (oldest)", None),
    ]
    with pytest.raises(NotFound, match="payment P-404 is not in the ledger"):
        views.payment_detail(ledger, "P-404")


def test_audit_trail_filters(ledger: sqlite3.Connection) -> None:
    add_event(ledger, "E-1", "C-2")
    payments.record_payment(ledger, now="2026-11-20T08:00:00Z", staff="amy", client="C-2", amount="5",
                            date="2026-11-20", apply_to="event", event="E-1", payment_id="PE")
    payments.change_mode(ledger, "PE", "specific", now="2026-11-21T08:00:00Z", staff="bo")
    everything = views.audit_trail(ledger)
    assert [a.action for a in everything] == ["payment.record", "payment.mode", "apply"]  # time order
    c2 = [views.audit_json(a) for a in views.audit_trail(ledger, client="C-2", since="2026-11-21")]
    assert len(c2) == 1
    assert {k: c2[0][k] for k in ("staff", "action", "client_id", "payment_id", "event_id", "detail")} == {
        "staff": "bo", "action": "payment.mode", "client_id": "C-2", "payment_id": "PE", "event_id": "E-1",
        "detail": {"from": "event", "to": "specific", "unapplied": "5.00"}}
    with pytest.raises(InputError, match="YYYY-MM-DD"):
        views.audit_trail(ledger, since="21/11/2026")


# --- reading through indexes (the speed requirement) ----------------------------------------


@pytest.fixture
def plans(ledger: sqlite3.Connection) -> Iterator[Callable[[], list[str]]]:
    """The query plans of every SELECT the code under test runs (statements traced as executed)."""
    statements: list[str] = []
    ledger.set_trace_callback(statements.append)

    def collect() -> list[str]:
        ledger.set_trace_callback(None)
        out = []
        for sql in statements:
            head = sql.lstrip().split(None, 1)[0].upper()
            if head in ("SELECT", "WITH"):
                out += [row[3] for row in ledger.execute("EXPLAIN QUERY PLAN " + sql)]
        return out

    yield collect
    ledger.set_trace_callback(None)


LEDGER_TABLES = ("clients", "events", "charges", "payments", "remittances", "journal_lines", "audit")


def full_scans(plan: list[str]) -> list[str]:
    # "SCAN t USING INDEX i" walks only an index's entries (e.g. the partial payments_open); a bare
    # "SCAN t" of a ledger table reads the whole ledger. Scans of a query's own subquery are fine.
    return [p for p in plan if p.split()[:2] in (["SCAN", t] for t in LEDGER_TABLES) and " USING INDEX " not in p]


def test_an_audit_row_of_an_earlier_version_shows_its_money_as_money(ledger: sqlite3.Connection) -> None:
    """Earlier versions kept a conversion's unapplied amount in cents; the trail is never rewritten,
    so it is read as "160.00", like the rows written now, in the table and in JSON alike."""
    add_client(ledger, "C1")
    with write_txn(ledger):
        ledger.execute(
            "INSERT INTO audit (at, staff, action, client_key, payment_key, event_key, reason, detail) VALUES"
            " ('2026-11-01T02:00:00Z', NULL, 'payment_apply_to_specific', 'C1', 'P1', 'E1', 'event E1 is done',"
            " '{\"event_status\": \"done\", \"from\": \"event\", \"to\": \"specific\", \"unapplied\": 16000}')")
    (row,) = views.audit_trail(ledger, client="C1")
    assert views.audit_json(row)["detail"] == {"event_status": "done", "from": "event", "to": "specific",
                                               "unapplied": "160.00"}


def test_client_show_payment_show_and_apply_never_scan(ledger: sqlite3.Connection, plans: Callable[[], list[str]]) -> None:
    views.client_detail(ledger, "C-1")
    views.payment_detail(ledger, "P1")
    r = clerk.apply_pairs(ledger, "P1", ["C1-A=1", "C1-B=1"], now=NOW, staff="clerk1").applied[0].remittance_id
    clerk.reallocate(ledger, r, ["C1-B=1"], reason="x", now=NOW, staff="clerk1")
    plan = plans()
    assert plan, "no statements were traced"
    assert full_scans(plan) == []


def test_unallocated_reads_only_open_payments(ledger: sqlite3.Connection, plans: Callable[[], list[str]]) -> None:
    views.unallocated(ledger, now=TODAY)
    plan = plans()
    assert "SCAN payments USING INDEX payments_open" in plan
    assert full_scans(plan) == []


def test_the_scan_detector_sees_a_scan(ledger: sqlite3.Connection, plans: Callable[[], list[str]]) -> None:
    # --all reads pending payments, which no index holds: the detector above must see that.
    views.unallocated(ledger, now=TODAY, include_pending=True)
    assert full_scans(plans()) == ["SCAN payments"]


def test_a_post_dated_payment_has_waited_no_days(conn: sqlite3.Connection) -> None:
    add_client(conn, "C-7", "Gus")
    add_payment(conn, "P7", "C-7", "2027-01-05", 900, apply_to="specific")  # a check dated ahead
    (row,) = [e.as_json() for e in views.unallocated(conn, now=TODAY)]
    assert (row["client_id"], row["days_waiting"], row["unallocated"]) == ("C-7", 0, "9.00")
