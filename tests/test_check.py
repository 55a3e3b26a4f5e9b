"""`payalloc check`: a sound ledger passes; each way of corrupting one is named by its code.

The corruptions use raw SQL on a plain sqlite3 connection, after dropping the guard triggers
(or ignoring CHECK constraints, or un-STRICTing a table) that would otherwise refuse them:
`check` is the third lock, for what got past the Python code and the database.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from payalloc.allocation import Allocation
from payalloc.ledger import check as check_sql
from payalloc.ledger import job as job_sql
from payalloc.ledger.connection import init_ledger, open_ledger, write_txn
from payalloc.services.check import CODES, check_ledger
from tests.builders import add_charge, add_client, add_event, add_payment
from tests.conftest import Cli

SENTINEL = "ZZSENTINEL-Patient-Name"
T0 = "2026-02-01T02:00:00Z"


def _remit(
    conn: sqlite3.Connection, payment: int, charge: int, client: int, cents: int, *,
    staff: str | None = None, rule: str | None = None, job_run: int | None = None, replaces: int | None = None,
) -> int:
    cur = conn.execute(
        "INSERT INTO remittances (payment_id, charge_id, client_id, amount_cents, source, rule, staff,"
        " job_run_id, created_at, replaces_id) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (payment, charge, client, cents, "manual" if staff else "job", rule, staff, job_run, T0, replaces),
    )
    remittance = int(cur.lastrowid or 0)
    if staff is None:  # as the job does: its remittances have no cache trigger
        job_sql.add_to_caches(conn, [Allocation(payment, charge, client, cents, rule or "oldest")])
    elif replaces is None:  # as apply does; the rest kept by an unapply is named in the unapply's row
        conn.execute("INSERT INTO audit (at, staff, action, remittance_id) VALUES (?, ?, 'apply', ?)",
                     (T0, staff, remittance))
    return remittance


def _reverse(conn: sqlite3.Connection, remittance: int, reason: str, *, audit: bool = True,
             kept: int | None = None) -> None:
    conn.execute(
        "UPDATE remittances SET status = 'reversed', reversed_at = ?, reversed_by = 'clerk1', reversal_reason = ?"
        " WHERE id = ?",
        (T0, reason, remittance),
    )
    if audit:
        conn.execute(
            "INSERT INTO audit (at, staff, action, remittance_id, reason, detail)"
            " VALUES (?, 'clerk1', 'unapply', ?, ?, ?)",
            (T0, remittance, reason, json.dumps({"kept_remittance_id": kept})),
        )


def _journal(conn: sqlite3.Connection, batch: int, remittance: int, entry: str, cents: int) -> None:
    debit, credit = ("2300", "1200") if entry == "post" else ("1200", "2300")
    conn.executemany(
        "INSERT INTO journal_lines (batch_id, remittance_id, entry, account, debit_cents, credit_cents)"
        " VALUES (?,?,?,?,?,?)",
        [(batch, remittance, entry, debit, cents, 0), (batch, remittance, entry, credit, 0, cents)],
    )


def build_clean_ledger(path: Path) -> None:
    """Two clients with every kind of row a sound ledger holds: job and manual remittances,
    ready, posted, reversed (from ready and from posted), a replacement, a void payment."""
    init_ledger(path)
    conn = open_ledger(path)
    try:
        add_client(conn, "C1", name=SENTINEL)
        add_client(conn, "C2")
        add_event(conn, "E1", "C1")
        add_event(conn, "E2", "C2", status="done")
        add_charge(conn, "CH1", "C1", "2026-01-05", 10_000)                          # id 1
        add_charge(conn, "CH2", "C1", "2026-01-06", 8_000, payer="patient_resp")     # id 2
        add_charge(conn, "CH3", "C1", "2026-01-06", 5_000, payer="insurance")        # id 3
        add_charge(conn, "CH4", "C2", "2026-01-07", 6_000, event="E2")               # id 4
        add_charge(conn, "CH5", "C1", "2026-01-08", 7_000)                           # id 5
        add_payment(conn, "P1", "C1", "2026-01-10", 12_000)                          # id 1
        add_payment(conn, "P2", "C1", "2026-01-11", 3_000, apply_to="specific")      # id 2
        add_payment(conn, "P3", "C2", "2026-01-12", 6_000, apply_to="event", event="E2")  # id 3
        add_payment(conn, "P4", "C1", "2026-01-13", 2_000, status="pending")        # id 4
        add_payment(conn, "P5", "C1", "2026-01-14", 1_500, apply_to="specific")      # id 5
        add_payment(conn, "P6", "C1", "2026-01-15", 900, apply_to="event", event="E1")  # id 6
        with write_txn(conn):
            conn.execute(
                "INSERT INTO job_runs (started_at, finished_at, status) VALUES (?, ?, 'done')", (T0, T0)
            )
            conn.executemany(
                "INSERT INTO gl_mappings (key, account, updated_at, updated_by) VALUES (?, ?, ?, 'clerk1')",
                [("unapplied_default", "2300", T0), ("self_pay_ar", "1200", T0)],
            )
            r1 = _remit(conn, 1, 1, 1, 10_000, rule="oldest", job_run=1)              # posted
            _remit(conn, 1, 2, 1, 2_000, rule="oldest", job_run=1)                    # ready
            r3 = _remit(conn, 2, 2, 1, 3_000, staff="clerk1")                         # reversed from ready
            r4 = _remit(conn, 3, 4, 2, 4_000, rule="event", job_run=1)                # posted, then reversed
            r5 = _remit(conn, 5, 5, 1, 1_500, staff="clerk1")                         # reversed by the void
            conn.execute(
                "INSERT INTO posting_batches (kind, job_run_id, created_at) VALUES ('post', 1, ?)", (T0,)
            )
            conn.execute("UPDATE remittances SET status = 'posted', posted_batch_id = 1 WHERE id IN (?, ?)", (r1, r4))
            _journal(conn, 1, r1, "post", 10_000)
            _journal(conn, 1, r4, "post", 4_000)
            _reverse(conn, r3, "wrong charge", kept=6)
            _remit(conn, 2, 2, 1, 2_000, staff="clerk1", replaces=r3)                 # id 6: the rest of r3
            _remit(conn, 2, 5, 1, 1_000, staff="clerk1")                              # id 7
            conn.execute(
                "INSERT INTO posting_batches (kind, staff, created_at) VALUES ('reverse', 'clerk1', ?)", (T0,)
            )
            _reverse(conn, r4, "refund")
            _journal(conn, 2, r4, "reverse", 4_000)
            _reverse(conn, r5, "check bounced")
            conn.execute("UPDATE payments SET status = 'void' WHERE id = 5")
    finally:
        conn.close()


@pytest.fixture(scope="module")
def clean_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clean") / "clean.db"
    build_clean_ledger(path)
    assert not Path(str(path) + "-wal").exists()  # checkpointed: the file alone is the ledger
    return path


@pytest.fixture
def copy_of(clean_ledger: Path, tmp_path: Path) -> Path:
    path = tmp_path / "copy.db"
    shutil.copyfile(clean_ledger, path)
    return path


def raw(path: Path) -> sqlite3.Connection:
    """A plain connection with none of payalloc's guards: foreign keys off, autocommit."""
    return sqlite3.connect(path, isolation_level=None)


def run_check(path: Path) -> tuple[int, dict[str, Any], str]:
    result = Cli(path)("check", "--json")
    assert "Traceback" not in result.stderr
    return result.exit_code, json.loads(result.stdout), result.stderr


# --- corruptions: each returns nothing; the table below says what check must name --------------


def drop(c: sqlite3.Connection, *triggers: str) -> None:
    for name in triggers:
        c.execute(f"DROP TRIGGER {name}")


def unstrict(path: Path, table: str) -> None:
    """Turn a STRICT table into a plain one by rewriting its CREATE statement (writable_schema)."""
    c = raw(path)
    c.execute("PRAGMA writable_schema = ON")
    assert c.execute(
        "UPDATE sqlite_schema SET sql = replace(sql, ') STRICT', ')') WHERE name = ?", (table,)
    ).rowcount == 1
    c.close()


def payment_over_allocated(path: Path) -> None:
    c = raw(path)
    drop(c, "remittances_guard_insert")
    c.execute("PRAGMA ignore_check_constraints = ON")  # the cache's own CHECK (applied <= amount)
    c.execute(
        "INSERT INTO remittances (payment_id, charge_id, client_id, amount_cents, source, staff, created_at)"
        " VALUES (2, 5, 1, 500, 'manual', 'clerk1', 'x')"
    )  # P2 (3,000) is fully applied already; CH5 has room


def charge_over_allocated_c1(path: Path) -> None:
    c = raw(path)
    drop(c, "remittances_guard_insert")
    c.execute("PRAGMA ignore_check_constraints = ON")
    # CH1 (10,000) is fully paid by P1; P6 (900, C1) has room
    c.execute(
        "INSERT INTO remittances (payment_id, charge_id, client_id, amount_cents, source, staff, created_at)"
        " VALUES (6, 1, 1, 900, 'manual', 'clerk1', 'x')"
    )


def client_mismatch(path: Path) -> None:
    c = raw(path)
    drop(c, "remittances_guard_insert")
    # P3 is C2's payment (2,000 unapplied); CH5 is C1's charge
    c.execute(
        "INSERT INTO remittances (payment_id, charge_id, client_id, amount_cents, source, staff, created_at)"
        " VALUES (3, 5, 2, 700, 'manual', 'clerk1', 'x')"
    )


def real_money(path: Path) -> None:
    unstrict(path, "payments")
    c = raw(path)
    drop(c, "payments_guard_update")
    c.execute("UPDATE payments SET amount_cents = 12000.5 WHERE payment_key = 'P1'")


def text_money(path: Path) -> None:
    unstrict(path, "charges")
    c = raw(path)
    drop(c, "charges_guard_update")
    c.execute("UPDATE charges SET amount_cents = '70.00 dollars' WHERE charge_key = 'CH5'")


def negative_money(path: Path) -> None:
    c = raw(path)
    drop(c, "payments_guard_update")
    c.execute("PRAGMA ignore_check_constraints = ON")
    c.execute("UPDATE payments SET amount_cents = -2000 WHERE payment_key = 'P4'")


def zero_journal_line(path: Path) -> None:
    c = raw(path)
    drop(c, "journal_lines_no_update")
    c.execute("PRAGMA ignore_check_constraints = ON")
    # both sides zeroed: the line balances but says nothing; the posting no longer covers the amount
    c.execute("UPDATE journal_lines SET debit_cents = 0 WHERE id = 1")


def payment_cache(path: Path) -> None:
    c = raw(path)  # no trigger needs dropping: the cache is writable, only check catches this
    c.execute("UPDATE payments SET applied_cents = applied_cents + 100 WHERE payment_key = 'P3'")


def charge_cache(path: Path) -> None:
    c = raw(path)
    c.execute("UPDATE charges SET applied_cents = applied_cents - 100 WHERE charge_key = 'CH2'")


def deleted_remittance(path: Path) -> None:
    c = raw(path)
    drop(c, "remittances_no_delete")
    c.execute("DELETE FROM remittances WHERE id = 7")  # P2 -> CH5 1,000, ready: caches still count it


def insurance_allocated(path: Path) -> None:
    c = raw(path)
    drop(c, "remittances_guard_insert")
    c.execute("PRAGMA ignore_check_constraints = ON")  # CHECK (payer <> 'insurance' OR applied = 0)
    c.execute(
        "INSERT INTO remittances (payment_id, charge_id, client_id, amount_cents, source, staff, created_at)"
        " VALUES (6, 3, 1, 500, 'manual', 'clerk1', 'x')"
    )


def void_with_remittances(path: Path) -> None:
    c = raw(path)
    drop(c, "payments_guard_update")
    c.execute("UPDATE payments SET status = 'void' WHERE payment_key = 'P2'")  # remittances 6, 7 active


def pending_with_remittance(path: Path) -> None:
    c = raw(path)
    drop(c, "remittances_guard_insert")
    c.execute(
        "INSERT INTO remittances (payment_id, charge_id, client_id, amount_cents, source, staff, created_at)"
        " VALUES (4, 5, 1, 500, 'manual', 'clerk1', 'x')"
    )


def reversal_without_audit(path: Path) -> None:
    c = raw(path)  # the guard allows ready -> reversed: only the missing audit row is wrong
    c.execute(
        "UPDATE remittances SET status = 'reversed', reversed_at = 'x', reversed_by = 'clerk1',"
        " reversal_reason = 'oops' WHERE id = 2"
    )


def reversal_without_who(path: Path) -> None:
    c = raw(path)
    c.execute(
        "UPDATE remittances SET status = 'reversed', reversed_at = 'x', reversal_reason = 'oops' WHERE id = 7"
    )
    c.execute("INSERT INTO audit (at, staff, action, remittance_id) VALUES ('x', 'clerk1', 'unapply', 7)")


def posted_reversal_without_lines(path: Path) -> None:
    c = raw(path)
    c.execute(
        "UPDATE remittances SET status = 'reversed', reversed_at = 'x', reversed_by = 'clerk1',"
        " reversal_reason = 'refund' WHERE id = 1"
    )
    c.execute("INSERT INTO audit (at, staff, action, remittance_id) VALUES ('x', 'clerk1', 'unapply', 1)")


def double_reversal(path: Path) -> None:
    c = raw(path)  # journal lines can be inserted: a second reversing entry for remittance 4
    c.execute("INSERT INTO posting_batches (kind, staff, created_at) VALUES ('reverse', 'clerk1', 'x')")
    _journal(c, 3, 4, "reverse", 4_000)


def posted_back_to_ready(path: Path) -> None:
    c = raw(path)  # remittance 1 keeps its batch and its posting lines: the next run-job would post it again
    drop(c, "remittances_guard_update")
    c.execute("UPDATE remittances SET status = 'ready' WHERE id = 1")


def reversal_to_other_accounts(path: Path) -> None:
    c = raw(path)  # remittance 4's reversing lines balance, but not on the accounts it was posted to
    drop(c, "journal_lines_no_update")
    c.execute("UPDATE journal_lines SET account = '9999' WHERE remittance_id = 4 AND entry = 'reverse'")


def mappings_on_one_account(path: Path) -> None:
    raw(path).execute("UPDATE gl_mappings SET account = (SELECT account FROM gl_mappings WHERE key = 'self_pay_ar')")


def posting_unbalanced(path: Path) -> None:
    c = raw(path)
    c.execute(
        "INSERT INTO journal_lines (batch_id, remittance_id, entry, account, debit_cents, credit_cents)"
        " VALUES (1, 1, 'post', '2300', 50, 0)"
    )


def posted_without_lines(path: Path) -> None:
    c = raw(path)
    c.execute("INSERT INTO posting_batches (kind, job_run_id, created_at) VALUES ('post', 1, 'x')")
    c.execute("UPDATE remittances SET status = 'posted', posted_batch_id = 3 WHERE id = 2")


def manual_without_staff(path: Path) -> None:
    c = raw(path)
    c.execute("PRAGMA ignore_check_constraints = ON")
    c.execute(
        "INSERT INTO remittances (payment_id, charge_id, client_id, amount_cents, source, created_at)"
        " VALUES (6, 5, 1, 300, 'manual', 'x')"
    )


def manual_without_audit(path: Path) -> None:
    c = raw(path)  # a remittance written with the sqlite3 shell: sound in every way but its audit row
    c.execute(
        "INSERT INTO remittances (payment_id, charge_id, client_id, amount_cents, source, staff, created_at)"
        " VALUES (6, 5, 1, 100, 'manual', 'clerk1', 'x')"
    )


def job_with_staff(path: Path) -> None:
    c = raw(path)
    c.execute("PRAGMA ignore_check_constraints = ON")
    c.execute(
        "INSERT INTO remittances (payment_id, charge_id, client_id, amount_cents, source, rule, staff,"
        " job_run_id, created_at) VALUES (6, 5, 1, 300, 'job', 'oldest', 'clerk1', 1, 'x')"
    )


def orphan_remittance(path: Path) -> None:
    c = raw(path)  # foreign_keys is off on a plain connection
    drop(c, "remittances_guard_insert")
    c.execute(
        "INSERT INTO remittances (payment_id, charge_id, client_id, amount_cents, source, staff, created_at)"
        " VALUES (99, 5, 1, 300, 'manual', 'clerk1', 'x')"
    )


def event_payment_without_event(path: Path) -> None:
    c = raw(path)
    drop(c, "payments_guard_update")
    c.execute("PRAGMA ignore_check_constraints = ON")
    c.execute("UPDATE payments SET event_id = NULL WHERE payment_key = 'P6'")


def event_other_client(path: Path) -> None:
    c = raw(path)
    drop(c, "payments_guard_update")
    c.execute("UPDATE payments SET event_id = 2 WHERE payment_key = 'P6'")  # E2 is C2's


def bad_date(path: Path) -> None:
    c = raw(path)
    drop(c, "charges_guard_update")
    c.execute("UPDATE charges SET service_date = '2026-02-30' WHERE charge_key = 'CH3'")


def guard_dropped(path: Path) -> None:
    c = raw(path)
    drop(c, "remittances_no_delete")


def dropped_table(path: Path) -> None:
    c = raw(path)
    c.execute("DROP TABLE journal_lines")  # takes its two guard triggers with it


def garbled_page(path: Path) -> None:
    c = raw(path)
    root = c.execute("SELECT rootpage FROM sqlite_schema WHERE name = 'audit_at'").fetchone()[0]
    page_size = c.execute("PRAGMA page_size").fetchone()[0]
    c.close()
    with path.open("r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\xa5garbage" * (page_size // 8))


def done_run_without_end(path: Path) -> None:
    c = raw(path)
    c.execute("UPDATE job_runs SET finished_at = NULL WHERE id = 1")


Ids = dict[str, Any]
G = "guard_trigger_missing"
INTEG = "integrity_check_failed"  # integrity_check also verifies CHECK constraints (ignored to corrupt)
# (corruption, the code check must give it, ids that violation must carry, other codes it also brings)
CORRUPTIONS: list[tuple[Callable[[Path], None], str, Ids, set[str]]] = [
    (payment_over_allocated, "payment_over_allocated", {"payment_id": "P2", "client_id": "C1"}, {G, INTEG, "manual_without_audit"}),
    (charge_over_allocated_c1, "charge_over_allocated", {"charge_id": "CH1"}, {G, INTEG, "manual_without_audit"}),
    (client_mismatch, "remittance_client_mismatch",
     {"remittance_id": 8, "payment_id": "P3", "charge_id": "CH5", "client_id": "C2",
      "payment_client_id": "C2", "charge_client_id": "C1"}, {G, "manual_without_audit"}),
    (real_money, "money_not_integer", {"payment_id": "P1", "column_name": "amount_cents", "detail": "real"},
     {G, "table_not_strict"}),
    (text_money, "money_not_integer", {"charge_id": "CH5", "detail": "text"}, {G, "table_not_strict"}),
    (negative_money, "money_not_positive", {"payment_id": "P4", "actual": "-20.00"}, {G, INTEG}),
    (zero_journal_line, "money_not_positive", {"table_name": "journal_lines", "row_id": 1},
     {G, INTEG, "posting_unbalanced", "journal_batch_unbalanced"}),
    (payment_cache, "payment_cache_mismatch", {"payment_id": "P3", "actual": "1.00", "expected": "0.00"}, set()),
    (charge_cache, "charge_cache_mismatch", {"charge_id": "CH2", "actual": "39.00", "expected": "40.00"}, set()),
    (deleted_remittance, "payment_cache_mismatch", {"payment_id": "P2", "actual": "30.00", "expected": "20.00"},
     {G, "charge_cache_mismatch"}),
    (insurance_allocated, "insurance_charge_allocated", {"charge_id": "CH3", "remittance_id": 8}, {G, INTEG, "manual_without_audit"}),
    (void_with_remittances, "remittance_on_unready_payment",
     {"payment_id": "P2", "remittance_id": 7, "detail": "void"}, {G}),
    (pending_with_remittance, "remittance_on_unready_payment", {"payment_id": "P4", "detail": "pending"}, {G, "manual_without_audit"}),
    (reversal_without_audit, "reversal_incomplete", {"remittance_id": 2, "detail": "no audit row names it"},
     set()),
    (reversal_without_who, "reversal_incomplete",
     {"remittance_id": 7, "detail": "reversed_at, reversed_by or reason missing"}, set()),
    (posted_reversal_without_lines, "reversal_incomplete",
     {"remittance_id": 1, "detail": "posted but no reversing journal lines"}, {"reversal_not_mirrored"}),
    (double_reversal, "reversal_unbalanced", {"remittance_id": 4, "debit": "80.00", "expected": "40.00"},
     {"reversal_not_mirrored"}),
    (posted_back_to_ready, "journal_lines_unexpected", {"remittance_id": 1, "detail": "post"}, {G}),
    (reversal_to_other_accounts, "reversal_not_mirrored", {"remittance_id": 4, "detail": "2300", "actual": "40.00"}, {G}),
    (mappings_on_one_account, "gl_mappings_same_account", {"table_name": "gl_mappings"}, set()),
    (posting_unbalanced, "posting_unbalanced", {"remittance_id": 1, "batch_id": 1, "debit": "100.50"},
     {"journal_batch_unbalanced"}),
    (posted_without_lines, "posting_unbalanced", {"remittance_id": 2, "batch_id": 3, "debit": "0.00"}, set()),
    (manual_without_staff, "manual_without_staff", {"remittance_id": 8, "payment_id": "P6"},
     {INTEG, "manual_without_audit"}),
    (manual_without_audit, "manual_without_audit", {"remittance_id": 8, "payment_id": "P6", "charge_id": "CH5"},
     set()),
    # A job row inserted by hand skips the job's cache update: the caches are reported too.
    (job_with_staff, "job_with_staff", {"remittance_id": 8}, {INTEG, "payment_cache_mismatch", "charge_cache_mismatch"}),
    (orphan_remittance, "foreign_key_violation",
     {"table_name": "remittances", "row_id": 8, "detail": "payments"}, {G, "manual_without_audit"}),
    (event_payment_without_event, "event_payment_without_event", {"payment_id": "P6"}, {G, INTEG, "apply_to_invalid"}),
    (event_other_client, "event_client_mismatch", {"payment_id": "P6", "event_id": "E2"}, {G}),
    (bad_date, "date_invalid", {"charge_id": "CH3", "column_name": "service_date"}, {G}),
    (guard_dropped, "guard_trigger_missing", {"detail": "remittances_no_delete"}, set()),
    (dropped_table, "table_not_strict", {"table_name": "journal_lines"}, {G, "check_query_failed"}),
    (garbled_page, "integrity_check_failed", {}, {"check_query_failed"}),
    (done_run_without_end, "job_run_inconsistent", {"job_run_id": 1, "detail": "done"}, set()),
]


@pytest.mark.parametrize(
    ("corrupt", "code", "ids", "also"), CORRUPTIONS, ids=[c[0].__name__ for c in CORRUPTIONS]
)
def test_check_names_each_corruption(
    copy_of: Path, corrupt: Callable[[Path], None], code: str, ids: Ids, also: set[str]
) -> None:
    exit_code, _, _ = run_check(copy_of)
    assert exit_code == 0  # the copy was sound before

    corrupt(copy_of)
    exit_code, report, stderr = run_check(copy_of)

    assert exit_code == 5, stderr
    assert report["ok"] is False
    named = [v for v in report["violations"] if v["code"] == code]
    assert named, f"{code} not reported; got {[v['code'] for v in report['violations']]}"
    assert any(ids.items() <= v.items() for v in named), f"no {code} with {ids}: {named}"
    assert {v["code"] for v in report["violations"]} - {code} <= also  # nothing else cried wolf
    assert all(v["message"] and v["code"] in CODES for v in report["violations"])
    assert code in stderr and "error: check found" in stderr
    assert SENTINEL not in json.dumps(report) and SENTINEL not in stderr


def test_check_csv_lists_each_violation_as_the_table_does(copy_of: Path) -> None:
    import csv
    import io

    clean = Cli(copy_of)("check", "--csv")
    assert clean.exit_code == 0 and clean.stdout.splitlines() == ["code,ids,message"]
    payment_cache(copy_of)
    result = Cli(copy_of)("check", "--csv")
    assert result.exit_code == 5 and "payment_cache_mismatch" in result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout, newline="")))
    _, report, _ = run_check(copy_of)
    assert [(r["code"], r["message"]) for r in rows] == [(v["code"], v["message"]) for v in report["violations"]]
    assert "payment_id=P3" in rows[0]["ids"]


def test_at_least_twelve_distinct_codes_are_exercised() -> None:
    assert len({code for _, code, _, _ in CORRUPTIONS}) >= 20


def test_clean_ledger_passes_with_counts_on_stderr(clean_ledger: Path, tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    shutil.copyfile(clean_ledger, path)
    path.chmod(0o600)  # a copy is 0644 here, which check would warn about
    result = Cli(path)("check")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr.strip() == "ledger OK: 2 clients, 6 payments, 5 charges, 7 remittances checked"


def test_counts_and_violations_say_one_in_the_singular(tmp_path: Path) -> None:
    path = tmp_path / "one.db"
    init_ledger(path)
    conn = open_ledger(path)
    try:
        add_client(conn, "C1")
        add_charge(conn, "CH1", "C1", "2026-01-05", 10_000)
    finally:
        conn.close()
    result = Cli(path)("check")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.strip() == "ledger OK: 1 client, 0 payments, 1 charge, 0 remittances checked"
    c = raw(path)
    guard = c.execute("SELECT sql FROM sqlite_schema WHERE name = 'charges_guard_update'").fetchone()[0]
    drop(c, "charges_guard_update")
    c.execute("UPDATE charges SET service_date = '2026-02-30' WHERE charge_key = 'CH1'")
    c.execute(guard)  # the guard back: the bad date is the one violation
    failed = Cli(path)("check")
    assert failed.exit_code == 5
    assert "1 violation" in failed.stdout and "1 violations" not in failed.stdout
    assert "check found 1 violation in ledger" in failed.stderr


def test_clean_ledger_json_report(copy_of: Path) -> None:
    exit_code, report, _ = run_check(copy_of)
    assert exit_code == 0
    assert report == {
        "ok": True,
        "counts": {"clients": 2, "payments": 6, "charges": 5, "remittances": 7},
        "violations": [],
    }


def test_table_output_lists_every_violation_and_exits_5(copy_of: Path) -> None:
    payment_cache(copy_of)
    reversal_without_audit(copy_of)
    bad_date(copy_of)
    result = Cli(copy_of)("check")
    assert result.exit_code == 5
    out = result.stdout
    for text in ("payment_cache_mismatch", "reversal_incomplete", "date_invalid", "P3", "CH3",
                 "remittance_id=2", "4 violations"):
        assert text in out, text
    assert "check found 4 violations" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert SENTINEL not in result.stdout + result.stderr


def test_violation_messages_name_ids_and_money(copy_of: Path) -> None:
    payment_over_allocated(copy_of)
    _, report, _ = run_check(copy_of)
    (v,) = [v for v in report["violations"] if v["code"] == "payment_over_allocated"]
    assert v["message"] == "payment P2: its remittances total 35.00, more than its amount 30.00"
    assert v["actual"] == "35.00" and v["expected"] == "30.00"


def test_guard_trigger_list_matches_a_fresh_ledger(ledger_path: Path) -> None:
    c = raw(ledger_path)
    names = {row[0] for row in c.execute("SELECT name FROM sqlite_schema WHERE type = 'trigger'")}
    tables = {row[0] for row in c.execute(
        "SELECT name FROM pragma_table_list WHERE schema = 'main' AND name NOT LIKE 'sqlite_%'"
        " AND name NOT LIKE '\\_%' ESCAPE '\\'"
    )}
    c.close()
    guards = {n for n in names if any(w in n for w in ("guard", "no_delete", "no_update", "applied", "reversed"))}
    assert guards == set(check_sql.GUARD_TRIGGERS)
    assert tables == set(check_sql.LEDGER_TABLES)


def test_check_reads_one_snapshot_and_does_not_wait_for_a_writer(copy_of: Path) -> None:
    """A job holding the write lock neither blocks check nor shows it half-done work."""
    writer = open_ledger(copy_of)
    reader = open_ledger(copy_of)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE payments SET applied_cents = applied_cents + 1 WHERE payment_key = 'P3'")
        started = time.monotonic()
        report = check_ledger(reader)
        assert time.monotonic() - started < 5
        assert report.ok, report.violations  # the uncommitted cache change is not seen
        writer.execute("COMMIT")
        assert [v.code for v in check_ledger(reader).violations] == ["payment_cache_mismatch"]
    finally:
        writer.close()
        reader.close()


def test_a_ledger_built_by_the_real_commands_passes_check(ledger_path: Path, cli: Cli) -> None:
    """No false alarms on what payalloc itself writes: job and manual remittances, posting,
    partial unapply (a replacement), unapply of a posted remittance, a void, an event payment."""
    conn = open_ledger(ledger_path)
    try:
        add_client(conn, "C1", name=SENTINEL)
        add_client(conn, "C2")
        add_event(conn, "E2", "C2")
        add_charge(conn, "CH1", "C1", "2026-01-05", 10_000)
        add_charge(conn, "CH2", "C1", "2026-01-06", 8_000, payer="patient_resp")
        add_charge(conn, "CH3", "C1", "2026-01-06", 5_000, payer="insurance")
        add_charge(conn, "CH4", "C2", "2026-01-07", 6_000, event="E2")
        add_charge(conn, "CH5", "C1", "2026-01-08", 7_000)
    finally:
        conn.close()

    def ok(*args: str) -> str:
        result = cli(*args)
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
        return result.stdout

    ok("gl", "map", "unapplied_default", "2300")
    ok("gl", "map", "self_pay_ar", "1200")
    ok("payment", "record", "--id", "P1", "--client", "C1", "--amount", "120.00", "--date", "2026-01-10",
       "--apply-to", "oldest")
    ok("payment", "record", "--id", "P2", "--client", "C1", "--amount", "50.00", "--date", "2026-01-11",
       "--apply-to", "specific")
    ok("payment", "record", "--id", "P3", "--client", "C2", "--amount", "45.00", "--date", "2026-01-12",
       "--apply-to", "event", "--event", "E2")
    ok("payment", "record", "--id", "P4", "--client", "C1", "--amount", "20.00", "--date", "2026-01-13",
       "--apply-to", "specific", "--pending")
    ok("apply", "P2", "CH2=30.00", "CH5=20.00")
    ok("run-job", "-q")  # P1 to CH1 and CH2, P3 to CH4; everything ready is posted
    c = raw(ledger_path)
    ids = dict(c.execute(
        "SELECT ch.charge_key || '/' || p.payment_key, r.id FROM remittances r"
        " JOIN charges ch ON ch.id = r.charge_id JOIN payments p ON p.id = r.payment_id"
    ).fetchall())
    c.close()
    ok("unapply", str(ids["CH5/P2"]), "--reason", "part of it was wrong", "--amount", "5.00")
    ok("unapply", str(ids["CH4/P3"]), "--reason", "refund")
    ok("payment", "record", "--id", "P5", "--client", "C1", "--amount", "15.00", "--date", "2026-01-14",
       "--apply-to", "specific")
    ok("apply", "P5", "CH5=15.00")
    ok("run-job", "-q")
    ok("payment", "void", "P2", "--reason", "check returned")
    ok("event", "done", "E2")
    ok("run-job", "-q")

    c = raw(ledger_path)
    statuses = {row[0] for row in c.execute("SELECT status || '/' || source FROM remittances")}
    replaced = c.execute("SELECT count(*) FROM remittances WHERE replaces_id IS NOT NULL").fetchone()[0]
    c.close()
    # The ledger holds each kind of row check verifies, so a false alarm on any would show here.
    assert {"posted/job", "reversed/job", "reversed/manual", "posted/manual"} <= statuses
    assert replaced == 1

    exit_code, report, _ = run_check(ledger_path)
    assert exit_code == 0, report["violations"]
    assert report["counts"]["clients"] == 2
    result = cli("check")
    assert result.exit_code == 0 and result.stderr.startswith("ledger OK: 2 clients, 5 payments, 5 charges")


def test_check_names_job_work_that_no_mark_points_to(tmp_path: Path) -> None:
    """run-job visits only marked clients; an oldest payment and an open charge with no mark
    would wait forever, so check names them."""
    path = tmp_path / "unmarked.db"
    init_ledger(path)
    conn = open_ledger(path)
    add_client(conn, "C1")
    add_charge(conn, "CH1", "C1", "2026-01-01", 10_000)
    add_payment(conn, "P1", "C1", "2026-01-02", 4_000)
    assert check_ledger(conn).violations == []  # marked: the next run will do it
    with write_txn(conn):
        conn.execute("UPDATE clients SET job_pending = 0")
    codes = [v.code for v in check_ledger(conn).violations]
    conn.close()
    assert codes == ["job_work_unmarked"]
