"""The clerk's allocations through the service layer: apply (rule 3), unapply and reallocate (rule 5)."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payalloc.allocation import Allocation
from payalloc.errors import InputError, NotFound, ProblemsError
from payalloc.ledger import job as job_sql
from payalloc.ledger.connection import init_ledger, open_ledger, write_txn
from payalloc.ledger.remittances import reverse_remittance
from payalloc.services import clerk
from tests.builders import add_charge, add_client, add_payment
from tests.test_payments import NOW, post

Dump = Callable[[], list[str]]


@pytest.fixture
def ledger(conn: sqlite3.Connection) -> sqlite3.Connection:
    add_client(conn, "C-1")
    add_client(conn, "C-2")
    add_charge(conn, "X", "C-1", "2026-11-01", 18700)
    add_charge(conn, "Z", "C-1", "2026-11-02", 5000)
    add_charge(conn, "PR", "C-1", "2026-11-03", 3000, payer="patient_resp")
    add_charge(conn, "INS", "C-1", "2026-11-03", 9000, payer="insurance")
    add_charge(conn, "B", "C-2", "2026-11-01", 4000)
    add_payment(conn, "Y", "C-1", "2026-11-20", 6000, apply_to="specific", note="Jan sessions")
    add_payment(conn, "Y2", "C-1", "2026-11-21", 10000, apply_to="specific")
    add_payment(conn, "OLD", "C-1", "2026-11-20", 6000, apply_to="oldest")
    add_payment(conn, "PEND", "C-1", "2026-11-20", 6000, apply_to="specific", status="pending")
    add_payment(conn, "VOID", "C-1", "2026-11-20", 6000, apply_to="specific", status="void")
    return conn


def figures(conn: sqlite3.Connection) -> dict[str, int]:
    """Every payment's unapplied amount and every charge's balance, by external id."""
    out = {k: a - b for k, a, b in conn.execute("SELECT payment_key, amount_cents, applied_cents FROM payments")}
    out |= {k: a - b for k, a, b in conn.execute("SELECT charge_key, amount_cents, applied_cents FROM charges")}
    return out


def live(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT p.payment_key, c.charge_key, r.amount_cents, r.status, r.source, r.staff FROM remittances r"
        " JOIN payments p ON p.id = r.payment_id JOIN charges c ON c.id = r.charge_id"
        " WHERE r.status <> 'reversed' ORDER BY r.id"
    ).fetchall()


def apply(conn: sqlite3.Connection, payment: str, *pairs: str) -> clerk.ApplyResult:
    return clerk.apply_pairs(conn, payment, list(pairs), now=NOW, staff="clerk1")


def refused(conn: sqlite3.Connection, dump: Dump, payment: str, *pairs: str) -> list[str]:
    before = dump()
    with pytest.raises(ProblemsError) as info:
        apply(conn, payment, *pairs)
    assert dump() == before
    assert info.value.exit_code == 3
    return [str(p) for p in info.value.problems]


# --- apply -----------------------------------------------------------------------------------------


def test_the_seed_example_is_refused_with_both_reasons(ledger: sqlite3.Connection, dump: Dump) -> None:
    assert refused(ledger, dump, "Y", "X=200.00", "Z=20.00") == [
        "200.00 exceeds the 187.00 balance of charge X",
        "220.00 in total exceeds the 60.00 unapplied on payment Y",
    ]


def test_apply_creates_ready_manual_remittances_with_staff(ledger: sqlite3.Connection) -> None:
    result = apply(ledger, "Y", "X=40", "PR=$20.00")
    assert [(a.charge_key, a.amount_cents, a.payment_unapplied_cents, a.charge_balance_cents)
            for a in result.applied] == [("X", 4000, 0, 14700), ("PR", 2000, 0, 1000)]
    assert live(ledger) == [("Y", "X", 4000, "ready", "manual", "clerk1"), ("Y", "PR", 2000, "ready", "manual", "clerk1")]
    f = figures(ledger)
    assert (f["Y"], f["X"], f["PR"]) == (0, 14700, 1000)
    audit = ledger.execute("SELECT action, staff, at, payment_key, charge_key, remittance_id FROM audit").fetchall()
    assert audit == [("apply", "clerk1", NOW, "Y", "X", result.applied[0].remittance_id),
                     ("apply", "clerk1", NOW, "Y", "PR", result.applied[1].remittance_id)]


def test_a_charge_given_twice_on_the_command_line_is_refused_not_added_up(
    ledger: sqlite3.Connection, dump: Dump
) -> None:
    # `apply Y X=5 X=5` is most likely a typo for another charge: not a 10.00 remittance to X.
    assert refused(ledger, dump, "Y", "X=5", "Z=5", " X =5", "X=1") == [
        "argument 3 ( X =5): charge X is already given in argument 1 (X=5); give each charge once,"
        " with its whole amount",
        "argument 4 (X=1): charge X is already given in argument 1 (X=5); give each charge once,"
        " with its whole amount",
    ]
    r = rid(apply(ledger, "Y", "X=10"))
    before = dump()
    with pytest.raises(ProblemsError) as info:
        clerk.reallocate(ledger, r, ["Z=3", "Z=2"], reason="x", now=NOW, staff="c")
    assert [str(p) for p in info.value.problems] == [
        "argument 2 (Z=2): charge Z is already given in argument 1 (Z=3); give each charge once, with its whole amount"]
    assert dump() == before


def test_rows_of_a_file_to_the_same_charge_become_one_remittance_naming_its_lines(
    ledger: sqlite3.Connection, tmp_path: Path
) -> None:
    # A file (an export, a worksheet) may well hold several rows for one charge: added up, and the
    # remittance says which lines it holds, so that a row copied twice by mistake shows.
    path = write(tmp_path, "payment_id,charge_id,amount\nY,X,10\nY,Z,5\nY,X,15.50\n")
    result = clerk.apply_file(ledger, path, now=NOW, staff="clerk1")
    assert [(a.charge_key, a.amount_cents, a.wheres) for a in result.applied] == [
        ("X", 2550, ("line 2", "line 4")), ("Z", 500, ("line 3",))]
    assert len(live(ledger)) == 2


def test_apply_exactly_the_whole_payment_and_balance(ledger: sqlite3.Connection) -> None:
    apply(ledger, "Y", "Z=50", "PR=10")
    assert figures(ledger)["Y"] == 0 and figures(ledger)["Z"] == 0


@pytest.mark.parametrize(
    ("payment", "pairs", "reasons"),
    [
        ("PEND", ["X=1"], ["payment PEND is pending; reconcile it first: payalloc payment ready PEND"]),
        ("VOID", ["X=1"], ["payment VOID is void"]),
        ("OLD", ["X=1"], ["payment OLD is applied to the oldest charges by run-job, not by hand; to allocate it"
                          " yourself, change its mode first: payalloc payment mode OLD specific"]),
        ("Y", ["INS=1"], ["charge INS is billed to insurance and is never allocated client payments"]),
        ("Y", ["B=1"], ["charge B belongs to client C-2, not to client C-1 of payment Y"]),
        ("P-404", ["X=1"], ["payment P-404 is not in the ledger"]),
        ("Y", ["CH-404=1"], ["charge CH-404 is not in the ledger (payalloc client show C-1 lists the open charges)"]),
        ("Y", ["X=1.005", "X"], ["argument 1 (X=1.005): '1.005' has more than 2 decimals: an amount is in whole cents, like 1,234.50",
                                 "argument 2: 'X' is not CHARGE_ID=AMOUNT (for example CH-2013=60.00)"]),
        ("Y", ["X=0"], ["argument 1 (X=0): amount must be greater than 0.00"]),
        ("Y", ["Z=60.01"], ["60.01 exceeds the 50.00 balance of charge Z",
                            "60.01 exceeds the 60.00 unapplied on payment Y"]),
    ],
)
def test_each_refusal_names_the_ids_and_writes_nothing(
    ledger: sqlite3.Connection, dump: Dump, payment: str, pairs: list[str], reasons: list[str]
) -> None:
    assert refused(ledger, dump, payment, *pairs) == reasons


def test_one_bad_line_refuses_the_whole_set(ledger: sqlite3.Connection, dump: Dump) -> None:
    assert refused(ledger, dump, "Y", "X=10", "INS=5", "Z=10") == [
        "charge INS is billed to insurance and is never allocated client payments"
    ]


def test_an_empty_set_is_refused(ledger: sqlite3.Connection) -> None:
    with pytest.raises(InputError, match="nothing to apply"):
        apply(ledger, "Y")


def test_apply_checks_against_what_is_already_applied(ledger: sqlite3.Connection, dump: Dump) -> None:
    apply(ledger, "Y", "Z=45")
    assert refused(ledger, dump, "Y", "Z=10") == ["10.00 exceeds the 5.00 balance of charge Z"]
    assert refused(ledger, dump, "Y", "X=16") == ["16.00 exceeds the 15.00 unapplied on payment Y"]


def write(tmp_path: Path, text: str, name: str = "alloc.csv") -> str:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return str(path)


def test_apply_file_several_payments_at_once(ledger: sqlite3.Connection, tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeffamount,payment_id,charge_id,memo\n40.00,Y,X,a\n\n20,Y,Z,b\n100,Y2,X,c\n")
    result = clerk.apply_file(ledger, path, now=NOW, staff="clerk1")
    assert result.ignored_columns == ["memo"]
    assert result.total_cents == 16000
    f = figures(ledger)
    assert (f["Y"], f["Y2"], f["X"], f["Z"]) == (0, 0, 4700, 3000)


def test_apply_file_reads_its_header_as_import_does(ledger: sqlite3.Connection, tmp_path: Path, dump: Dump) -> None:
    # A spreadsheet's titles: " Payment ID", "Charge-ID", "AMOUNT" (import takes them; so does apply).
    path = write(tmp_path, " Payment ID,Charge-ID,AMOUNT,Memo,\nY,X,40.00,a,\n")
    result = clerk.apply_file(ledger, path, now=NOW, staff="clerk1")
    assert result.ignored_columns == ["Memo", "(blank)"]
    assert figures(ledger)["X"] == 14700
    before = dump()
    with pytest.raises(InputError, match="line 1: column amount appears twice in the header"):
        clerk.apply_file(ledger, write(tmp_path, "payment_id,charge_id,amount,Amount\nY,X,1,100\n"), now=NOW,
                         staff="clerk1")
    assert dump() == before


def test_apply_file_reports_every_problem_with_its_line(
    ledger: sqlite3.Connection, dump: Dump, tmp_path: Path
) -> None:
    path = write(tmp_path, "payment_id,charge_id,amount\nY,X,200.00\nY,Z,20.00\nY2,INS,1\nY2,Z,abc\n")
    before = dump()
    with pytest.raises(ProblemsError) as info:
        clerk.apply_file(ledger, path, now=NOW, staff="clerk1")
    assert [str(p) for p in info.value.problems] == [
        "line 4: charge INS is billed to insurance and is never allocated client payments",  # in line order
        "line 5: 'abc' is not an amount like 1,234.50",
        "200.00 exceeds the 187.00 balance of charge X",
        "220.00 in total exceeds the 60.00 unapplied on payment Y",
    ]
    assert info.value.summary == "nothing was applied: 4 problems with the allocations"
    assert dump() == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"is empty: expected a header row \(payment_id, charge_id, amount\)"),
        (b"payment,charge,amount\nY,X,1\n",
         r"line 1: missing required columns payment_id, charge_id \(an apply file has columns payment_id, charge_id,"),
        (b"payment_id,charge_id,amount\n", "has no allocation rows"),
        (b'payment_id,charge_id,amount\nY,"X,1\n', "line 2: malformed CSV"),
        (b'payment_id,charge_id,amount\nY,"X,1\nZ,X,2\n', "line 2: a quoted field that starts here is never closed"),
        ("payment_id,charge_id,amount\n".encode("utf-16"), "is UTF-16 text; save it as UTF-8 CSV"),
        ("payment_id,charge_id,amount\n".encode("utf-32"), "is UTF-32 text; save it as UTF-8 CSV"),
        ("payment_id,charge_id,amount\n".encode("utf-16-le"), "line 1 contains NUL bytes"),
        (b"payment_id,charge_id,amount\nY,X\xe9,1\n", "line 2 is not UTF-8 text"),
    ],
)
def test_apply_file_refuses_a_bad_file(
    ledger: sqlite3.Connection, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        clerk.apply_file(ledger, str(path), now=NOW, staff="clerk1")


def test_apply_file_reports_a_row_of_the_wrong_width_with_every_other_problem(
    ledger: sqlite3.Connection, tmp_path: Path, dump: Callable[[], list[str]]
) -> None:
    path = tmp_path / "allocations.csv"
    path.write_bytes(b"payment_id,charge_id,amount\nY,X,1.00\nY,X\nY,CH-404,1.00\nY,X,1,extra\n")
    before = dump()
    with pytest.raises(ProblemsError) as info:
        clerk.apply_file(ledger, str(path), now=NOW, staff="clerk1")
    assert [str(p) for p in info.value.problems] == [
        "line 3: has 2 fields but the header has 3",
        "line 4: charge CH-404 is not in the ledger (payalloc client show C-1 lists the open charges)",  # a file's problems of an id name the line
        "line 5: has 4 fields but the header has 3",
    ]
    assert dump() == before


def test_apply_file_names_the_line_a_multi_line_row_starts_on(
    ledger: sqlite3.Connection, tmp_path: Path, dump: Dump
) -> None:
    """As import does: a quoted cell spanning lines does not shift the lines after it."""
    path = write(tmp_path, 'payment_id,charge_id,amount,note\nY,CH-404,1.00,"two\nlines"\nY,CH-405,1.00,\n')
    with pytest.raises(ProblemsError) as info:
        clerk.apply_file(ledger, path, now=NOW, staff="clerk1")
    assert [str(p) for p in info.value.problems] == ["line 2: charge CH-404 is not in the ledger (payalloc client show C-1 lists the open charges)",
                                                     "line 4: charge CH-405 is not in the ledger (payalloc client show C-1 lists the open charges)"]


def test_apply_file_missing(ledger: sqlite3.Connection, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        clerk.apply_file(ledger, str(tmp_path / "nope.csv"), now=NOW, staff="clerk1")


# --- unapply ---------------------------------------------------------------------------------------


def rid(result: clerk.ApplyResult, i: int = 0) -> int:
    return result.applied[i].remittance_id


def test_unapply_reverses_and_unapplies_the_money(ledger: sqlite3.Connection) -> None:
    r = rid(apply(ledger, "Y", "X=40"))
    result = clerk.unapply(ledger, r, reason="wrong session", now="2026-11-24T09:00:00Z", staff="clerk2")
    assert (result.unapplied_cents, result.kept_id) == (4000, None)
    assert ledger.execute(
        "SELECT status, reversed_at, reversed_by, reversal_reason FROM remittances WHERE id = ?", (r,)
    ).fetchone() == ("reversed", "2026-11-24T09:00:00Z", "clerk2", "wrong session")
    assert (figures(ledger)["Y"], figures(ledger)["X"]) == (6000, 18700)
    assert ledger.execute("SELECT action, staff, remittance_id, reason FROM audit ORDER BY id DESC").fetchone() == (
        "unapply", "clerk2", r, "wrong session")
    # Un-applied money can be allocated again.
    apply(ledger, "Y", "Z=50")


def test_partial_unapply_keeps_the_rest_in_a_new_remittance(ledger: sqlite3.Connection) -> None:
    r = rid(apply(ledger, "Y", "X=40"))
    result = clerk.unapply(ledger, r, reason="too much", amount="15", now=NOW, staff="clerk2")
    assert (result.unapplied_cents, result.kept_cents) == (1500, 2500)
    assert ledger.execute(
        "SELECT amount_cents, status, source, staff, replaces_id FROM remittances WHERE id = ?", (result.kept_id,)
    ).fetchone() == (2500, "ready", "manual", "clerk2", r)
    assert (figures(ledger)["Y"], figures(ledger)["X"]) == (3500, 16200)


def test_unapply_of_the_whole_amount_keeps_nothing(ledger: sqlite3.Connection) -> None:
    r = rid(apply(ledger, "Y", "X=40"))
    assert clerk.unapply(ledger, r, reason="x", amount="40.00", now=NOW, staff="c").kept_id is None


def test_unapply_posted_writes_reversing_lines_from_the_posted_accounts(ledger: sqlite3.Connection) -> None:
    r = rid(apply(ledger, "Y", "X=40"))
    post(ledger, r)
    result = clerk.unapply(ledger, r, reason="wrong", amount="10", now=NOW, staff="clerk2")
    assert ledger.execute(
        "SELECT b.kind, b.staff, j.entry, j.account, j.debit_cents, j.credit_cents FROM journal_lines j"
        " JOIN posting_batches b ON b.id = j.batch_id WHERE j.entry = 'reverse' ORDER BY j.id"
    ).fetchall() == [("reverse", "clerk2", "reverse", "2400-unapplied", 0, 4000),
                     ("reverse", "clerk2", "reverse", "1210-ar", 4000, 0)]
    # The kept 30.00 is a new ready remittance, to be posted by the next remittance processing.
    assert ledger.execute("SELECT status, amount_cents FROM remittances WHERE id = ?",
                          (result.kept_id,)).fetchone() == ("ready", 3000)


def test_unapply_refusals(ledger: sqlite3.Connection, dump: Dump) -> None:
    r = rid(apply(ledger, "Y", "X=40"))
    clerk.unapply(ledger, r, reason="once", now=NOW, staff="c")
    r2 = rid(apply(ledger, "Y", "Z=10"))
    before = dump()
    with pytest.raises(InputError, match=f"remittance {r} is already reversed"):
        clerk.unapply(ledger, r, reason="twice", now=NOW, staff="c")
    with pytest.raises(NotFound, match="remittance 999 is not in the ledger"):
        clerk.unapply(ledger, 999, reason="x", now=NOW, staff="c")
    with pytest.raises(InputError, match=f"20.00 is more than the 10.00 of remittance {r2}"):
        clerk.unapply(ledger, r2, reason="x", amount="20", now=NOW, staff="c")
    with pytest.raises(InputError, match="--reason must not be empty"):
        clerk.unapply(ledger, r2, reason=" ", now=NOW, staff="c")
    with pytest.raises(InputError, match="not an amount"):
        clerk.unapply(ledger, r2, reason="x", amount="ten", now=NOW, staff="c")
    assert dump() == before


def job_remittance(ledger: sqlite3.Connection) -> int:
    """A remittance of 60.00 of the oldest payment OLD to charge X, as run-job writes it."""
    with write_txn(ledger):
        run = ledger.execute("INSERT INTO job_runs (started_at, status) VALUES (?, 'done')", (NOW,)).lastrowid
        payment, client = ledger.execute("SELECT id, client_id FROM payments WHERE payment_key = 'OLD'").fetchone()
        charge = ledger.execute("SELECT id FROM charges WHERE charge_key = 'X'").fetchone()[0]
        job_sql.insert_remittances(ledger, [Allocation(payment, charge, client, 6000, "oldest")], run, NOW)
    return int(ledger.execute("SELECT max(id) FROM remittances").fetchone()[0])


def test_unapply_a_job_remittance_warns_the_job_will_reapply(ledger: sqlite3.Connection) -> None:
    r = job_remittance(ledger)
    assert clerk.unapply(ledger, r, reason="x", now=NOW, staff="c").payment_apply_to == "oldest"


def test_part_of_a_job_remittance_cannot_be_kept_by_hand(ledger: sqlite3.Connection, dump: Dump) -> None:
    """Rule 2: what stays applied of a partial unapply is a remittance by hand, and an oldest payment
    is never applied by hand. Whole, it may be unapplied (run-job applies the money again)."""
    r = job_remittance(ledger)
    before = dump()
    with pytest.raises(InputError, match=f"remittance {r} belongs to payment OLD, which run-job applies"
                                         r" \(oldest\); unapply it whole"):
        clerk.unapply(ledger, r, reason="x", now=NOW, staff="c", amount="20.00")
    assert dump() == before
    result = clerk.unapply(ledger, r, reason="x", now=NOW, staff="c", amount="60.00")  # all of it: allowed
    assert (result.unapplied_cents, result.kept_id) == (6000, None)


def test_shared_reverse_remittance_refuses_twice(ledger: sqlite3.Connection) -> None:
    r = rid(apply(ledger, "Y", "X=40"))
    with write_txn(ledger):
        before = reverse_remittance(ledger, r, staff=None, reason="job: event deleted", now=NOW)
        assert before.status == "ready"
        with pytest.raises(InputError, match="already reversed"):
            reverse_remittance(ledger, r, staff=None, reason="again", now=NOW)


# --- reallocate ------------------------------------------------------------------------------------


def test_reallocate_moves_the_money_in_one_transaction(ledger: sqlite3.Connection) -> None:
    r = rid(apply(ledger, "Y", "X=60"))
    result = clerk.reallocate(ledger, r, ["Z=50", "X=10"], reason="belongs to the 11-02 session", now=NOW,
                              staff="clerk2")
    assert result.unapplied.remittance.id == r
    assert [(a.charge_key, a.amount_cents) for a in result.applied] == [("Z", 5000), ("X", 1000)]
    f = figures(ledger)
    assert (f["Y"], f["X"], f["Z"]) == (0, 17700, 0)
    actions = [a for (a,) in ledger.execute("SELECT action FROM audit ORDER BY id")]
    assert actions == ["apply", "apply", "apply", "reallocate"]


def test_reallocate_is_checked_after_the_unapply(ledger: sqlite3.Connection) -> None:
    # Y is fully applied to X; moving all 60.00 of it to Z only fits because the unapply freed it.
    r = rid(apply(ledger, "Y", "X=60"))
    clerk.reallocate(ledger, r, ["Z=50"], reason="x", now=NOW, staff="c")
    assert figures(ledger)["Y"] == 1000


def test_reallocate_refused_keeps_the_original(ledger: sqlite3.Connection, dump: Dump) -> None:
    r = rid(apply(ledger, "Y", "X=60"))
    before = dump()
    with pytest.raises(ProblemsError) as info:
        clerk.reallocate(ledger, r, ["Z=50", "PR=20"], reason="x", now=NOW, staff="c")
    assert [str(p) for p in info.value.problems] == ["70.00 in total exceeds the 60.00 unapplied on payment Y"]
    with pytest.raises(ProblemsError) as info:
        clerk.reallocate(ledger, r, ["INS=10"], reason="x", now=NOW, staff="c")
    assert info.value.summary == f"nothing was changed (remittance {r} stays): 1 problem with the allocations"
    assert dump() == before


def test_reallocate_refuses_payments_the_job_applies(ledger: sqlite3.Connection, dump: Dump) -> None:
    r = rid(apply(ledger, "Y", "X=60"))
    with write_txn(ledger):
        ledger.execute("UPDATE payments SET apply_to = 'oldest' WHERE payment_key = 'Y'")
    before = dump()
    with pytest.raises(InputError, match="change its mode first: payalloc payment mode Y specific"):
        clerk.reallocate(ledger, r, ["Z=10"], reason="x", now=NOW, staff="c")
    assert dump() == before


def test_reallocate_other_refusals(ledger: sqlite3.Connection, dump: Dump) -> None:
    r = rid(apply(ledger, "Y", "X=60"))
    clerk.unapply(ledger, r, reason="x", now=NOW, staff="c")
    before = dump()
    with pytest.raises(InputError, match="already reversed"):
        clerk.reallocate(ledger, r, ["Z=10"], reason="x", now=NOW, staff="c")
    with pytest.raises(InputError, match="nothing to reallocate to"):
        clerk.reallocate(ledger, r, [], reason="x", now=NOW, staff="c")
    with pytest.raises(InputError, match="--reason must not be empty"):
        clerk.reallocate(ledger, r, ["Z=1"], reason="", now=NOW, staff="c")
    assert dump() == before


# --- property: whatever the clerk does, every figure stays consistent (rules 1 and 5) -----------------

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("apply"), st.sampled_from(["Y", "Y2"]),
                  st.lists(st.tuples(st.sampled_from(["X", "Z", "PR"]), st.integers(1, 9000)), min_size=1,
                           max_size=3)),
        st.tuples(st.just("unapply"), st.integers(0, 20), st.one_of(st.none(), st.integers(1, 9000))),
        st.tuples(st.just("reallocate"), st.integers(0, 20),
                  st.lists(st.tuples(st.sampled_from(["X", "Z", "PR"]), st.integers(1, 9000)), min_size=1,
                           max_size=2)),
    ),
    max_size=12,
)


@settings(max_examples=25)
@given(ops=OPS)
def test_any_sequence_of_clerk_actions_keeps_the_ledger_consistent(ops: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "l.db"
        init_ledger(path)
        conn = open_ledger(path)
        try:
            add_client(conn, "C-1")
            add_charge(conn, "X", "C-1", "2026-11-01", 18700)
            add_charge(conn, "Z", "C-1", "2026-11-02", 5000)
            add_charge(conn, "PR", "C-1", "2026-11-03", 3000, payer="patient_resp")
            add_payment(conn, "Y", "C-1", "2026-11-20", 6000, apply_to="specific")
            add_payment(conn, "Y2", "C-1", "2026-11-21", 10000, apply_to="specific")
            for op in ops:
                before = figures(conn)
                try:
                    if op[0] == "apply":
                        apply(conn, op[1], *(f"{c}={a / 100:.2f}" for c, a in op[2]))
                    elif op[0] == "unapply":
                        amount = None if op[2] is None else f"{op[2] / 100:.2f}"
                        clerk.unapply(conn, op[1], reason="r", amount=amount, now=NOW, staff="c")
                    else:
                        clerk.reallocate(conn, op[1], [f"{c}={a / 100:.2f}" for c, a in op[2]], reason="r",
                                         now=NOW, staff="c")
                except InputError:
                    assert figures(conn) == before  # refused: nothing changed
                f = figures(conn)
                assert all(v >= 0 for v in f.values())
                # The caches equal the sums of the live remittances, for payments and charges alike.
                assert conn.execute(
                    "SELECT count(*) FROM payments p WHERE applied_cents <> (SELECT coalesce(sum(amount_cents), 0)"
                    " FROM remittances r WHERE r.payment_id = p.id AND r.status <> 'reversed')"
                ).fetchone()[0] == 0
                assert conn.execute(
                    "SELECT count(*) FROM charges c WHERE applied_cents <> (SELECT coalesce(sum(amount_cents), 0)"
                    " FROM remittances r WHERE r.charge_id = c.id AND r.status <> 'reversed')"
                ).fetchone()[0] == 0
                # Money is conserved: what the payments lost, the charges lost.
                assert (f["Y"] + f["Y2"]) - (before["Y"] + before["Y2"]) == (
                    f["X"] + f["Z"] + f["PR"]) - (before["X"] + before["Z"] + before["PR"])
        finally:
            conn.close()
