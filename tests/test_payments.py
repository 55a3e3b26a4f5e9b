"""Payments through the service layer: record, ready, void, mode (rules 3, 5, 7)."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable

import pytest

from payalloc.errors import InputError, NotFound
from payalloc.ledger.connection import write_txn
from payalloc.services import payments
from tests.builders import add_charge, add_client, add_event, add_payment

NOW = "2026-11-23T10:00:00Z"
Dump = Callable[[], list[str]]


def record(conn: sqlite3.Connection, **kw: object) -> str:
    args: dict[str, object] = {"client": "C-1", "amount": "60.00", "date": "2026-11-20", "apply_to": "specific"}
    args.update(kw)
    return payments.record_payment(conn, now=NOW, staff="clerk1", **args).key  # type: ignore[arg-type]


def payment_row(conn: sqlite3.Connection, key: str) -> dict[str, object]:
    cur = conn.execute("SELECT * FROM payments WHERE payment_key = ?", (key,))
    names = [d[0] for d in cur.description]
    return dict(zip(names, cur.fetchone(), strict=True))


def audit_actions(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
    return conn.execute("SELECT action, staff, at, payment_key, reason FROM audit ORDER BY id").fetchall()


def remit(conn: sqlite3.Connection, payment: str, charge: str, cents: int) -> int:
    with write_txn(conn):
        pid, cid = conn.execute(
            "SELECT p.id, c.id FROM payments p, charges c WHERE p.payment_key = ? AND c.charge_key = ?",
            (payment, charge),
        ).fetchone()
        cur = conn.execute(
            "INSERT INTO remittances (payment_id, charge_id, client_id, amount_cents, source, staff, created_at)"
            " SELECT ?, ?, client_id, ?, 'manual', 'clerk0', ? FROM payments WHERE id = ?",
            (pid, cid, cents, NOW, pid),
        )
    return int(cur.lastrowid or 0)


def post(conn: sqlite3.Connection, remittance_id: int) -> None:
    """Post a remittance the way remittance processing does: a batch and two journal lines."""
    with write_txn(conn):
        amount = conn.execute("SELECT amount_cents FROM remittances WHERE id = ?", (remittance_id,)).fetchone()[0]
        batch = conn.execute(
            "INSERT INTO posting_batches (kind, created_at) VALUES ('post', ?)", (NOW,)
        ).lastrowid
        conn.executemany(
            "INSERT INTO journal_lines (batch_id, remittance_id, entry, account, debit_cents, credit_cents)"
            " VALUES (?, ?, 'post', ?, ?, ?)",
            [(batch, remittance_id, "2400-unapplied", amount, 0), (batch, remittance_id, "1210-ar", 0, amount)],
        )
        conn.execute("UPDATE remittances SET status = 'posted', posted_batch_id = ? WHERE id = ?",
                     (batch, remittance_id))


@pytest.fixture
def ledger(conn: sqlite3.Connection) -> sqlite3.Connection:
    add_client(conn, "C-1")
    add_client(conn, "C-2")
    add_event(conn, "E-1", "C-1")
    add_event(conn, "E-2", "C-2")
    add_event(conn, "E-DEL", "C-1", status="scheduled")
    with write_txn(conn):
        conn.execute("UPDATE events SET status = 'deleted' WHERE event_key = 'E-DEL'")
    add_charge(conn, "CH-1", "C-1", "2026-11-01", 10000)
    add_charge(conn, "CH-2", "C-1", "2026-11-02", 5000)
    return conn


# --- record ----------------------------------------------------------------------------------------


def test_record_inserts_the_payment_with_everything_entered(ledger: sqlite3.Connection) -> None:
    key = record(ledger, amount="$1,234.50", method="check", reference="1042", note=" for November ",
                 payer_name="Parent", payment_id="P-9")
    assert key == "P-9"
    row = payment_row(ledger, "P-9")
    assert row["amount_cents"] == 123450
    assert (row["apply_to"], row["entered_apply_to"], row["status"]) == ("specific", "specific", "ready")
    assert (row["method"], row["reference"], row["note"], row["payer_name"]) == ("check", "1042", "for November",
                                                                              "Parent")
    assert audit_actions(ledger) == [("payment.record", "clerk1", NOW, "P-9", None)]


def test_record_generates_a_unique_id(ledger: sqlite3.Connection) -> None:
    keys = {record(ledger) for _ in range(5)}
    assert len(keys) == 5
    assert all(re.fullmatch(r"P-20261123-[0-9a-f]{6}", k) for k in keys)


def test_record_of_a_ready_oldest_payment_gives_the_job_work(ledger: sqlite3.Connection) -> None:
    with write_txn(ledger):
        ledger.execute("UPDATE clients SET job_pending = 0")
    record(ledger, apply_to="specific")
    record(ledger, apply_to="oldest", pending=True)
    assert ledger.execute("SELECT job_pending FROM clients WHERE client_key = 'C-1'").fetchone()[0] == 0
    record(ledger, apply_to="oldest")
    assert ledger.execute("SELECT job_pending FROM clients WHERE client_key = 'C-1'").fetchone()[0] == 1


def test_record_pending_and_event_payment(ledger: sqlite3.Connection) -> None:
    key = record(ledger, apply_to="event", event="E-1", pending=True)
    row = payment_row(ledger, key)
    assert row["status"] == "pending"
    assert row["event_id"] == ledger.execute("SELECT id FROM events WHERE event_key = 'E-1'").fetchone()[0]


@pytest.mark.parametrize(
    ("kw", "error", "message"),
    [
        ({"client": "C-404"}, NotFound, "client C-404 is not in the ledger"),
        ({"amount": "0"}, InputError, "amount must be greater than 0.00"),
        ({"amount": "1.234"}, InputError, "'1.234' has more than 2 decimals"),
        ({"amount": "-5"}, InputError, "'-5' is negative: an amount must be greater than 0.00"),
        ({"date": "11/20/2026"}, InputError, "YYYY-MM-DD"),
        ({"date": "2026-02-30"}, InputError, "not a real calendar date"),
        ({"apply_to": "newest"}, InputError, "apply-to 'newest' is not one of oldest, specific, event"),
        ({"method": "bitcoin"}, InputError, "method 'bitcoin' is not one of"),
        ({"apply_to": "event"}, InputError, "needs --event EVENT_ID"),
        ({"apply_to": "event", "event": "E-404"}, NotFound, "event E-404 is not in the ledger"),
        ({"apply_to": "event", "event": "E-2"}, InputError, "event E-2 is not an event of client C-1"),
        ({"apply_to": "event", "event": "E-DEL"}, InputError, "event E-DEL is deleted"),
        ({"event": "E-1"}, InputError, "--event is only for --apply-to event"),
        ({"payment_id": "  "}, InputError, "payment_id is empty"),
    ],
)
def test_record_refusals_write_nothing(
    ledger: sqlite3.Connection, dump: Dump, kw: dict[str, object], error: type[Exception], message: str
) -> None:
    before = dump()
    with pytest.raises(error, match=re.escape(message)):
        record(ledger, **kw)
    assert dump() == before


def test_record_refuses_an_existing_id(ledger: sqlite3.Connection, dump: Dump) -> None:
    record(ledger, payment_id="P-1")
    before = dump()
    with pytest.raises(InputError, match="payment P-1 already exists"):
        record(ledger, payment_id="P-1", amount="5")
    assert dump() == before


# --- ready -----------------------------------------------------------------------------------------


def test_ready_reconciles_a_pending_payment_once(ledger: sqlite3.Connection) -> None:
    add_payment(ledger, "P-1", "C-1", "2026-11-20", 6000, status="pending")
    assert payments.mark_ready(ledger, "P-1", now=NOW, staff="clerk1") is True
    assert payment_row(ledger, "P-1")["status"] == "ready"
    assert payments.mark_ready(ledger, "P-1", now=NOW, staff="clerk1") is False
    assert [a[0] for a in audit_actions(ledger)] == ["payment.ready"]


def test_ready_refuses_void_and_unknown(ledger: sqlite3.Connection, dump: Dump) -> None:
    add_payment(ledger, "P-V", "C-1", "2026-11-20", 6000, status="void")
    before = dump()
    with pytest.raises(InputError, match="payment P-V is void"):
        payments.mark_ready(ledger, "P-V", now=NOW, staff="clerk1")
    with pytest.raises(NotFound, match="payment P-404 is not in the ledger"):
        payments.mark_ready(ledger, "P-404", now=NOW, staff="clerk1")
    assert dump() == before


# --- void ------------------------------------------------------------------------------------------


def test_void_reverses_every_remittance_and_the_gl_of_posted_ones(ledger: sqlite3.Connection) -> None:
    add_payment(ledger, "P-1", "C-1", "2026-11-20", 9000, apply_to="specific")
    r1 = remit(ledger, "P-1", "CH-1", 4000)
    r2 = remit(ledger, "P-1", "CH-2", 3000)
    post(ledger, r2)
    result = payments.void_payment(ledger, "P-1", reason="check returned NSF", now=NOW, staff="clerk1")
    assert result.reversed_ids == [r1, r2]
    assert result.reversed_cents == 7000
    row = payment_row(ledger, "P-1")
    assert (row["status"], row["applied_cents"]) == ("void", 0)
    assert ledger.execute("SELECT sum(applied_cents) FROM charges").fetchone()[0] == 0
    assert ledger.execute(
        "SELECT id, status, reversed_by, reversed_at FROM remittances ORDER BY id"
    ).fetchall() == [(r1, "reversed", "clerk1", NOW), (r2, "reversed", "clerk1", NOW)]
    # The posted one is reversed by mirror lines in a 'reverse' batch; history is not edited.
    lines = ledger.execute(
        "SELECT b.kind, b.staff, j.remittance_id, j.entry, j.account, j.debit_cents, j.credit_cents"
        " FROM journal_lines j JOIN posting_batches b ON b.id = j.batch_id ORDER BY j.id"
    ).fetchall()
    assert lines == [
        ("post", None, r2, "post", "2400-unapplied", 3000, 0),
        ("post", None, r2, "post", "1210-ar", 0, 3000),
        ("reverse", "clerk1", r2, "reverse", "2400-unapplied", 0, 3000),
        ("reverse", "clerk1", r2, "reverse", "1210-ar", 3000, 0),
    ]
    assert audit_actions(ledger)[-1] == ("payment.void", "clerk1", NOW, "P-1", "check returned NSF")


def test_void_refusals(ledger: sqlite3.Connection, dump: Dump) -> None:
    add_payment(ledger, "P-V", "C-1", "2026-11-20", 6000, status="void")
    add_payment(ledger, "P-1", "C-1", "2026-11-20", 6000)
    before = dump()
    with pytest.raises(InputError, match="payment P-V is already void"):
        payments.void_payment(ledger, "P-V", reason="x", now=NOW, staff="clerk1")
    with pytest.raises(InputError, match="--reason must not be empty"):
        payments.void_payment(ledger, "P-1", reason="  ", now=NOW, staff="clerk1")
    with pytest.raises(NotFound, match="payment P-404 is not in the ledger"):
        payments.void_payment(ledger, "P-404", reason="x", now=NOW, staff="clerk1")
    assert dump() == before


def test_void_a_pending_payment(ledger: sqlite3.Connection) -> None:
    add_payment(ledger, "P-1", "C-1", "2026-11-20", 6000, status="pending")
    assert payments.void_payment(ledger, "P-1", reason="never arrived", now=NOW, staff="clerk1").reversed_ids == []
    assert payment_row(ledger, "P-1")["status"] == "void"


# --- mode ------------------------------------------------------------------------------------------


def test_mode_changes_apply_to_but_keeps_what_was_entered(ledger: sqlite3.Connection) -> None:
    add_payment(ledger, "P-E", "C-1", "2026-11-20", 6000, apply_to="event", event="E-1")
    assert payments.change_mode(ledger, "P-E", "specific", now=NOW, staff="clerk1") == payments.ModeChange(True, "E-1")
    row = payment_row(ledger, "P-E")
    assert (row["apply_to"], row["entered_apply_to"]) == ("specific", "event")
    assert payments.change_mode(ledger, "P-E", "specific", now=NOW, staff="clerk1") == payments.ModeChange(False)
    # no longer an event payment: nothing more to say of its event
    assert payments.change_mode(ledger, "P-E", "oldest", now=NOW, staff="clerk1") == payments.ModeChange(True)
    assert payment_row(ledger, "P-E")["apply_to"] == "oldest"
    assert [a[0] for a in audit_actions(ledger)] == ["payment.mode", "payment.mode"]


def test_mode_to_oldest_gives_the_job_work(ledger: sqlite3.Connection) -> None:
    add_payment(ledger, "P-1", "C-1", "2026-11-20", 6000, apply_to="specific")
    with write_txn(ledger):
        ledger.execute("UPDATE clients SET job_pending = 0")
    payments.change_mode(ledger, "P-1", "oldest", now=NOW, staff="clerk1")
    assert ledger.execute("SELECT job_pending FROM clients WHERE client_key = 'C-1'").fetchone()[0] == 1


def test_mode_refusals(ledger: sqlite3.Connection, dump: Dump) -> None:
    add_payment(ledger, "P-V", "C-1", "2026-11-20", 6000, status="void")
    add_payment(ledger, "P-1", "C-1", "2026-11-20", 6000)
    before = dump()
    with pytest.raises(InputError, match="payment P-V is void"):
        payments.change_mode(ledger, "P-V", "specific", now=NOW, staff="clerk1")
    with pytest.raises(InputError, match="mode 'event' is not one of oldest, specific"):
        payments.change_mode(ledger, "P-1", "event", now=NOW, staff="clerk1")
    with pytest.raises(NotFound):
        payments.change_mode(ledger, "P-404", "oldest", now=NOW, staff="clerk1")
    assert dump() == before
