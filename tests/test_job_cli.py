"""`payalloc run-job` and `payalloc jobs` end to end, and the fault tests with real processes:
kill -9 at any moment then a re-run gives exactly the uninterrupted result; overlap exits 4."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from payalloc.ledger.connection import init_ledger, job_lock, open_ledger
from payalloc.services.job import run_job
from tests.builders import add_charge, add_client, add_event, add_payment
from tests.conftest import Cli

ROOT = Path(__file__).resolve().parent.parent
GEN = ROOT / "benchmarks" / "gen_ledger.py"


def small(conn: sqlite3.Connection) -> None:
    add_client(conn, "C1")
    add_client(conn, "C2")
    add_event(conn, "E1", "C2", status="done")
    add_charge(conn, "CH1", "C1", "2026-01-05", 100000)
    add_charge(conn, "CH2", "C1", "2026-01-06", 50000)
    add_charge(conn, "CH3", "C2", "2026-01-06", 2000, event="E1")
    add_payment(conn, "P1", "C1", "2026-01-10", 123450)
    add_payment(conn, "P2", "C2", "2026-01-10", 5000, apply_to="event", event="E1")


def test_summary_line_quiet_and_json(cli: Cli, conn: sqlite3.Connection) -> None:
    small(conn)
    first = cli("run-job")
    assert first.exit_code == 0
    assert first.stdout == (
        "run 1: 3 remittances (1,254.50) for 2 clients; 1 event payment to specific;"
        " posting skipped (GL mappings unapplied_default and self_pay_ar missing)\n"
    )
    assert "warning: 3 remittances stay ready: GL mappings unapplied_default and self_pay_ar" in first.stderr
    cli("gl", "map", "unapplied_default", "2150")
    cli("gl", "map", "self_pay_ar", "1210")
    quiet = cli("run-job", "-q")
    assert quiet.exit_code == 0 and quiet.stdout == "" and quiet.stderr == ""
    data = json.loads(cli("run-job", "--json").stdout)
    assert data == {
        "run_id": 3, "dry_run": False, "refused": False, "clients_checked": 0, "clients": 0, "remittances_created": 0,
        "amount_applied": "0.00", "event_payments_converted": 0, "remittances_posted": 0, "amount_posted": "0.00",
        "posting_batches": 0, "posting_ready": True, "missing_mappings": [], "interrupted_runs": 0, "warnings": [],
    }
    runs = json.loads(cli("jobs", "--json").stdout)
    assert [r["run_id"] for r in runs] == [3, 2, 1] and {r["status"] for r in runs} == {"done"}
    assert runs[1]["counts"]["remittances_posted"] == 3 and runs[2]["counts"]["amount_applied"] == "1254.50"
    assert [r["run_id"] for r in json.loads(cli("jobs", "--json", "--limit", "1").stdout)] == [3]
    assert [r["run_id"] for r in json.loads(cli("jobs", "--json", "--limit", "0").stdout)] == [3, 2, 1]  # 0: all
    cut = cli("jobs", "--limit", "2")  # a table says what it leaves out, as every listing does
    assert "run-job runs: 3 runs (the first 2; --limit N shows more" in cut.stdout
    assert re.match(r"run-job runs: 3 runs\s*\n", cli("jobs").stdout)
    table = cli("jobs")
    assert table.exit_code == 0 and "1,254.50" in table.stdout
    both = cli("run-job", "--json", "-q")
    assert both.exit_code == 2 and both.stderr == "error: choose one of --json and --quiet\n"


def test_jobs_csv_has_the_json_fields_with_the_counts_flattened(cli: Cli, conn: sqlite3.Connection) -> None:
    import csv
    import io

    from payalloc.ledger.connection import write_txn

    small(conn)
    assert cli("run-job", "-q").exit_code == 0
    with write_txn(conn):  # a run that failed early: no counts, an error a spreadsheet would run as a formula
        conn.execute("INSERT INTO job_runs (started_at, finished_at, status, pid, error)"
                     " VALUES ('2026-01-11T02:00:00Z', '2026-01-11T02:00:01Z', 'failed', 42, '=HYPERLINK(\"x\")')")
    result = cli("jobs", "--csv")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout, newline="")))
    counts = ["clients_checked", "clients", "remittances_created", "amount_applied", "event_payments_converted",
              "remittances_posted", "amount_posted", "posting_batches"]
    assert list(rows[0]) == ["run_id", "started_at", "finished_at", "status", "pid", *counts, "error"]
    runs = json.loads(cli("jobs", "--json").stdout)
    assert [r["run_id"] for r in rows] == [str(r["run_id"]) for r in runs] == ["2", "1"]
    failed, done = rows
    assert failed["status"] == "failed" and failed["error"] == "'=HYPERLINK(\"x\")"
    assert all(failed[k] == "" for k in counts)
    assert {k: done[k] for k in counts} == {k: str(runs[1]["counts"][k]) for k in counts}
    assert done["amount_applied"] == "1254.50" and done["remittances_created"] == "3" and done["error"] == ""
    assert (done["started_at"], done["finished_at"], done["pid"]) == (
        runs[1]["started_at"], runs[1]["finished_at"], str(runs[1]["pid"]))
    assert cli("jobs", "--csv", "--limit", "1").stdout.count("\n") == 2


def test_dry_run_prints_the_plan_and_writes_nothing(
    cli: Cli, conn: sqlite3.Connection, dump: Callable[[], list[str]]
) -> None:
    small(conn)
    before = dump()
    text = cli("run-job", "--dry-run")
    assert text.exit_code == 0 and "P1" in text.stdout and "1,000.00" in text.stdout
    assert text.stdout.splitlines()[-1].startswith("dry run (nothing written): would create 3 remittances (1,254.50)")
    data = json.loads(cli("run-job", "--dry-run", "--json").stdout)
    assert data["dry_run"] is True and data["run_id"] is None and data["remittances_created"] == 3
    assert data["remittances"][-1] == {
        "payment_id": "P2", "charge_id": "CH3", "client_id": "C2", "amount": "20.00", "rule": "event"
    }
    assert data["conversions"] == [
        {"payment_id": "P2", "client_id": "C2", "event_id": "E1", "event_status": "done", "unapplied": "30.00"}
    ]
    assert dump() == before
    assert json.loads(cli("jobs", "--json").stdout) == []


def test_overlapping_run_exits_4_at_once(cli: Cli, conn: sqlite3.Connection, ledger_path: Path) -> None:
    small(conn)
    with job_lock(ledger_path):
        busy = cli("run-job")
    assert busy.exit_code == 4 and "another run-job is running" in busy.stderr and busy.stdout == ""
    assert conn.execute("SELECT count(*) FROM job_runs").fetchone()[0] == 0
    assert cli("run-job", "-q").exit_code == 0


def test_json_prints_one_object_on_stdout_when_refused(cli: Cli, conn: sqlite3.Connection, ledger_path: Path,
                                                      tmp_path: Path) -> None:
    """`payalloc run-job --json | jq` must get an object whether the run was refused or not: the
    sentence on stderr, the same sentence in "error", the exit status unchanged."""
    small(conn)

    def refused(result: Any, code: int, error: str, dry_run: bool = False) -> None:
        assert result.exit_code == code, result.stderr
        assert json.loads(result.stdout) == {"dry_run": dry_run, "refused": True, "error": error,
                                             "problem_count": 0, "problems": []}
        assert result.stderr == f"error: {error}\n"

    with job_lock(ledger_path):
        refused(cli("run-job", "--json"), 4, f"another run-job is running on {ledger_path}; this one did nothing")
    blocker = sqlite3.connect(ledger_path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        refused(cli("run-job", "--json", env={"PAYALLOC_BUSY_TIMEOUT_MS": "0"}), 4,
                "the ledger stayed locked by another process for 0 s; nothing was changed, try again")
    finally:
        blocker.close()
    missing = tmp_path / "nope.db"
    refused(Cli(missing)("run-job", "--json", "--dry-run"), 3,
            f"ledger {missing} does not exist: give the practice's ledger with --db or PAYALLOC_DB"
            f" (payalloc --db {missing} init creates a new, empty one)", dry_run=True)
    assert conn.execute("SELECT count(*) FROM remittances").fetchone()[0] == 0
    done = json.loads(cli("run-job", "--json").stdout)
    assert done["refused"] is False and done["remittances_created"] == 3


def test_a_full_disk_after_committed_chunks_says_what_stays_and_a_rerun_carries_on(
    cli: Cli, conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run-job commits a chunk at a time: once one has, "nothing of it was written" would be false
    and could make someone restore a backup. Exit 1 as for any full disk; the run is recorded failed."""
    from payalloc.ledger import job as job_sql
    from payalloc.services import job

    for i in range(6):
        add_client(conn, f"C{i}")
        add_charge(conn, f"CH{i}", f"C{i}", "2026-01-01", 1000)
        add_payment(conn, f"P{i}", f"C{i}", "2026-01-02", 500)
    real_count, real_run = job_sql.update_run_counts, job.run_job
    chunks: list[int] = []
    full_at = [1]

    def disk_fills(*args: Any) -> None:  # in the chunk's transaction, before its commit
        chunks.append(1)
        if len(chunks) == full_at[0]:
            error = sqlite3.OperationalError("database or disk is full")
            error.sqlite_errorcode = sqlite3.SQLITE_FULL
            raise error
        real_count(*args)

    monkeypatch.setattr(job_sql, "update_run_counts", disk_fills)
    monkeypatch.setattr(job, "run_job", lambda *a, **k: real_run(*a, clients_per_chunk=2, **k))
    first = cli("run-job", "-q")  # nothing committed: the ledger is as before
    assert first.exit_code == 1 and first.stdout == ""
    assert first.stderr == (
        "error: the disk is full (or the ledger reached its size limit): the change in progress was rolled back"
        " and nothing of it was written; free some space and run the command again\n")
    chunks.clear()
    full_at[0] = 3
    second = cli("run-job", "-q")
    assert second.exit_code == 1 and second.stdout == ""
    assert second.stderr == (
        "error: the disk is full (or the ledger reached its size limit); run-job stopped after committing 4 clients"
        " (4 remittances created, 0 posted); the chunk in progress was rolled back: free some space and run it"
        " again, it carries on\n")
    assert conn.execute("SELECT count(*) FROM remittances").fetchone()[0] == 4
    runs = json.loads(cli("jobs", "--json").stdout)
    assert [(r["status"], r["error"]) for r in runs] == [
        ("failed", "OperationalError: database or disk is full")] * 2
    assert runs[0]["counts"]["clients_checked"] == 4  # what the run committed
    monkeypatch.setattr(job_sql, "update_run_counts", real_count)
    rerun = cli("run-job", "--json")
    assert rerun.exit_code == 0 and json.loads(rerun.stdout)["clients_checked"] == 2
    assert conn.execute("SELECT count(*) FROM remittances").fetchone()[0] == 6


def test_quiet_run_warns_once_that_the_previous_run_was_interrupted(cli: Cli, conn: sqlite3.Connection) -> None:
    """A crontab's -q prints nothing on success, but a killed run must reach cron mail (stderr)
    the next night; --json has the count instead."""
    small(conn)
    cli("gl", "map", "unapplied_default", "2150")  # no other warning
    cli("gl", "map", "self_pay_ar", "1210")
    stale = "INSERT INTO job_runs (started_at, status, pid) VALUES ('2026-11-30T02:00:00Z', 'running', 999999)"
    conn.execute(stale)
    quiet = cli("run-job", "-q")
    assert quiet.exit_code == 0 and quiet.stdout == ""
    assert quiet.stderr == (
        "warning: run 1 (started 2026-11-30T02:00:00Z) was interrupted; this run carried on its work\n")
    again = cli("run-job", "-q")  # said once: that run is now recorded interrupted
    assert again.exit_code == 0 and again.stderr == ""
    conn.execute(stale)
    text = cli("run-job")
    assert text.stderr.startswith("warning: run 4 (started 2026-11-30T02:00:00Z) was interrupted;")
    assert text.stdout.startswith("run 5: ")
    conn.execute(stale)
    data = cli("run-job", "--json")
    assert data.exit_code == 0 and data.stderr == "" and json.loads(data.stdout)["interrupted_runs"] == 1


def _no_locks(fd: int, operation: int) -> None:
    raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))


def test_a_file_system_without_locks_is_one_sentence_not_an_internal_error(
    cli: Cli, conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some network mounts refuse flock (ENOLCK): run-job says so and does nothing (exit 3), and
    `jobs` shows a run recorded 'running' as the ledger has it, since it cannot tell."""
    small(conn)
    conn.execute("INSERT INTO job_runs (started_at, status, pid) VALUES ('2026-11-23T02:00:00Z', 'running', 999999)")
    monkeypatch.setattr(fcntl, "flock", _no_locks)
    refused = cli("run-job")
    assert refused.exit_code == 3 and "cannot lock the run-job lock" in refused.stderr
    assert "internal error" not in refused.stderr
    assert conn.execute("SELECT count(*) FROM job_runs").fetchone()[0] == 1
    listed = cli("jobs", "--json")
    assert listed.exit_code == 0 and [r["status"] for r in json.loads(listed.stdout)] == ["running"]


def test_jobs_shows_a_run_whose_process_died_as_interrupted_not_running(
    cli: Cli, conn: sqlite3.Connection, ledger_path: Path
) -> None:
    """A run-job killed at 02:00 must not read 'running' to the on-call person at 09:00: once no
    process holds the run-job lock, a run still recorded 'running' has ended."""
    small(conn)
    conn.execute("INSERT INTO job_runs (started_at, status, pid) VALUES ('2026-11-23T02:00:00Z', 'running', 999999)")
    runs = json.loads(cli("jobs", "--json").stdout)
    assert [(r["status"], r["error"]) for r in runs] == [
        ("interrupted", "the run ended without recording how: killed, or it could not write its end (the ledger stayed locked or the disk was full)")]
    assert "interrupted" in cli("jobs").stdout and "running" not in cli("jobs").stdout
    assert "interrupted" in cli("jobs", "--csv").stdout
    with job_lock(ledger_path):  # a run that is really running is shown as running
        assert [r["status"] for r in json.loads(cli("jobs", "--json").stdout)] == ["running"]
    assert conn.execute("SELECT status FROM job_runs").fetchall() == [("running",)]  # a listing writes nothing
    assert json.loads(cli("run-job", "--json").stdout)["interrupted_runs"] == 1


def test_ctrl_c_is_one_sentence_on_stderr_and_exit_130(
    cli: Cli, conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    from payalloc.services import job

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(job, "run_job", interrupted)
    result = cli("run-job")
    assert result.exit_code == 130 and result.stdout == ""
    assert result.stderr == (
        "error: interrupted: a change not yet saved was rolled back, one already saved stays (the ledger is as"
        " before or as after); run-job and import are safe to run again, check any other command's result first\n")
    as_json = cli("run-job", "--json")  # a script piping into jq still gets one object
    assert as_json.exit_code == 130
    assert json.loads(as_json.stdout) == {"dry_run": False, "refused": True, "error": result.stderr[7:-1],
                                          "problem_count": 0, "problems": []}


def test_an_internal_error_with_json_is_one_object_too(
    cli: Cli, conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    from payalloc.services import job

    def broken(*args: Any, **kwargs: Any) -> None:
        raise ZeroDivisionError("a bug's text, which may quote a name")

    monkeypatch.setattr(job, "run_job", broken)
    result = cli("run-job", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"] == (
        "internal error (ZeroDivisionError); nothing was written; run with --debug for a traceback and report it")
    assert "quote a name" not in result.stdout + result.stderr


def test_missing_ledger_is_refused(tmp_path: Path) -> None:
    result = Cli(tmp_path / "nope.db")("run-job")
    assert result.exit_code == 3 and "does not exist" in result.stderr
    assert not (tmp_path / "nope.db").exists()


# --- real processes ----------------------------------------------------------------------------

def payalloc(db: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "payalloc", "--db", str(db), *args],
        capture_output=True, text=True, env={**os.environ, "PAYALLOC_STAFF": "cron", **(env or {})},
        timeout=300, check=False,
    )


def copy(src: Path, dst: Path) -> Path:
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    a.close()
    b.close()
    return dst


def snapshot(db: Path) -> dict[str, Any]:
    """Everything the job decides, without the run ids, batch ids and clock."""
    c = sqlite3.connect(db)
    try:
        return {
            "remittances": c.execute(
                "SELECT id, payment_id, charge_id, client_id, amount_cents, status, source, rule, staff"
                " FROM remittances ORDER BY id").fetchall(),
            "journal": c.execute(
                "SELECT remittance_id, entry, account, debit_cents, credit_cents FROM journal_lines"
                " ORDER BY remittance_id, entry, account").fetchall(),
            "payments": c.execute("SELECT id, apply_to, applied_cents FROM payments ORDER BY id").fetchall(),
            "charges": c.execute("SELECT id, applied_cents FROM charges ORDER BY id").fetchall(),
            "pending": c.execute("SELECT id FROM clients WHERE job_pending = 1").fetchall(),
            "conversions": c.execute(
                "SELECT payment_key, event_key, reason, staff FROM audit WHERE action = 'payment_apply_to_specific'"
                " ORDER BY payment_key").fetchall(),
        }
    finally:
        c.close()


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated ledger of 2,500 clients (three chunks of clients), imported, GL mapped."""
    tmp = tmp_path_factory.mktemp("generated")
    subprocess.run([sys.executable, str(GEN), str(tmp / "csv"), "--clients", "2500", "--seed", "7"],
                   check=True, capture_output=True)
    db = tmp / "base.db"
    assert payalloc(db, "init").returncode == 0
    for kind in ("clients", "events", "charges", "payments"):
        done = payalloc(db, "import", kind, str(tmp / "csv" / f"{kind}.csv"))
        assert done.returncode == 0, done.stderr
    assert payalloc(db, "gl", "map", "unapplied_default", "2150").returncode == 0
    assert payalloc(db, "gl", "map", "self_pay_ar", "1210").returncode == 0
    return db


@pytest.mark.slow
def test_kill_9_at_any_moment_then_rerun_equals_uninterrupted_run(generated: Path, tmp_path: Path) -> None:
    reference = copy(generated, tmp_path / "reference.db")
    done = payalloc(reference, "run-job", "--json")
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout)
    assert counts["remittances_created"] > 5000 and counts["remittances_posted"] == counts["remittances_created"]
    expected = snapshot(reference)

    # How many SQL statements an uninterrupted run executes (the kill hook counts the same way).
    counted = copy(generated, tmp_path / "counted.db")
    conn = open_ledger(counted)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    run_job(conn, counted, "2026-11-23T02:00:00Z")
    conn.close()
    total = len(statements)

    created, posted = len(expected["remittances"]), sum(r[5] == "posted" for r in expected["remittances"])
    partial: list[tuple[int, int]] = []
    for fraction in (0.002, 0.2, 0.45, 0.7, 0.97):
        db = copy(generated, tmp_path / f"killed-{fraction}.db")
        killed = payalloc(db, "run-job", env={"PAYALLOC_TEST_HOOKS": "kill",
                                              "PAYALLOC_TEST_KILL_AT": str(max(3, int(total * fraction)))})
        assert killed.returncode == -9, killed.stderr
        with sqlite3.connect(db) as c:
            partial.append(c.execute(
                "SELECT count(*), coalesce(sum(status = 'posted'), 0) FROM remittances").fetchone())
        c.close()
        rerun = payalloc(db, "run-job", "--json")
        assert rerun.returncode == 0, rerun.stderr
        assert json.loads(rerun.stdout)["interrupted_runs"] == 1
        assert snapshot(db) == expected, f"killed at {fraction:.0%} of the run"
        statuses = sqlite3.connect(db).execute("SELECT status FROM job_runs ORDER BY id").fetchall()
        assert statuses == [("interrupted",), ("done",)]
    # The kills landed before, between and after chunks of both phases, not only at the ends.
    assert any(0 < n < created for n, _ in partial), partial
    assert any(n == created and 0 < p < posted for n, p in partial), partial


@pytest.mark.slow
def test_second_process_exits_4_while_the_first_holds_the_ledger(generated: Path, tmp_path: Path) -> None:
    db = copy(generated, tmp_path / "busy.db")
    init_ledger(db)  # idempotent: also proves init leaves a ledger alone
    with job_lock(db):
        busy = payalloc(db, "run-job")
    assert busy.returncode == 4 and "another run-job is running" in busy.stderr
    assert payalloc(db, "run-job", "-q").returncode == 0


def test_sigterm_records_the_run_interrupted_says_so_and_a_rerun_finishes(generated: Path, tmp_path: Path) -> None:
    """`timeout`, systemd and `kill` send SIGTERM: the run is recorded interrupted (not left
    'running'), stderr has one sentence, the exit status is 128 + 15, and a re-run finishes."""
    import fcntl
    import signal
    import time

    db = copy(generated, tmp_path / "term.db")
    reference = copy(generated, tmp_path / "reference.db")
    assert payalloc(reference, "run-job", "-q").returncode == 0
    # A clerk's writer turn held here makes the job wait before its first chunk (ledger/writers.py).
    writer = os.open(str(db.resolve()) + ".writers", os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(writer, fcntl.LOCK_SH)
    job = subprocess.Popen([sys.executable, "-m", "payalloc", "--db", str(db), "run-job"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.closing(sqlite3.connect(db)) as c:
                if c.execute("SELECT count(*) FROM job_runs WHERE status = 'running'").fetchone()[0]:
                    break
            time.sleep(0.02)
        time.sleep(0.1)
        job.send_signal(signal.SIGTERM)
        out, err = job.communicate(timeout=60)
    finally:
        if job.poll() is None:
            job.kill()
        os.close(writer)
    assert job.returncode == 128 + signal.SIGTERM, (job.returncode, err)
    assert out == "" and err.count("\n") == 1 and "terminated" in err and "Traceback" not in err
    with contextlib.closing(sqlite3.connect(db)) as c:
        assert c.execute("SELECT status, finished_at IS NOT NULL, error FROM job_runs").fetchall() == [
            ("interrupted", 1, "Terminated: stopped by SIGTERM")]
    assert payalloc(db, "check").returncode == 0
    rerun = payalloc(db, "run-job", "--json")
    assert rerun.returncode == 0 and json.loads(rerun.stdout)["interrupted_runs"] == 0
    assert snapshot(db) == snapshot(reference)


@pytest.mark.parametrize(("argv", "command"), [
    (["run-job", "-q"], "run-job"),
    (["--db", "run-job", "jobs"], "jobs"),          # the value of --db is not the command
    (["--staff", "apply", "apply", "P1"], "apply"),
    (["--debug", "payment", "list"], "payment"),
    (["--help"], None),
    (["--version"], None),
    (["bogus"], None),                               # all commands, so the error can suggest one
    ([], None),
])
def test_the_entry_point_loads_only_the_requested_command(argv: list[str], command: str | None) -> None:
    from payalloc.cli.commands import requested

    assert requested(argv) == command


def test_every_command_is_reachable_through_the_lean_entry_point(tmp_path: Path) -> None:
    """Each top-level command, asked for by name, is registered (exit 0 on --help)."""
    from payalloc.cli.commands import MODULES

    for name in sorted({n for names in MODULES.values() for n in names}):
        proc = subprocess.run([sys.executable, "-m", "payalloc", name, "--help"], capture_output=True, text=True)
        assert proc.returncode == 0, (name, proc.stderr)
        assert "Usage: " in proc.stdout and name in proc.stdout


def test_jobs_table_groups_the_digits_of_counts_as_of_amounts(cli: Cli, conn: sqlite3.Connection) -> None:
    from payalloc.ledger.connection import write_txn

    counts = {"remittances_created": 72823, "amount_applied": "7179893.52", "event_payments_converted": 3502,
              "remittances_posted": 1000}
    with write_txn(conn):
        conn.execute("INSERT INTO job_runs (started_at, finished_at, status, pid, counts)"
                     " VALUES ('2026-01-11T02:00:00Z', '2026-01-11T02:00:09Z', 'done', 42, ?)", (json.dumps(counts),))
    result = cli("jobs")
    assert result.exit_code == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if "2026-01-11" in line)
    assert [cell.strip() for cell in row.split("│")[4:8]] == ["72,823", "7,179,893.52", "3,502", "1,000"]
