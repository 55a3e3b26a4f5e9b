"""The ledger file: creation, identity, and the database's own guards."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from payalloc.allocation import Allocation
from payalloc.errors import InputError, LedgerMissing
from payalloc.ledger import job as job_sql
from payalloc.ledger.connection import init_ledger, open_ledger, write_txn
from tests.builders import add_charge, add_client, add_payment
from tests.conftest import Cli


def test_init_creates_owner_only_file_and_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    created, applied = init_ledger(path)
    assert created and applied == ["0001_initial", "0002_cheap_checks_and_job_caches"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert init_ledger(path) == (False, [])


def test_connection_settings(conn: sqlite3.Connection) -> None:
    assert conn.isolation_level is None
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 10_000


def test_missing_ledger_is_refused_not_created(tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    with pytest.raises(LedgerMissing, match=r"typo\.db does not exist"):
        open_ledger(path)
    assert not path.exists()


def test_foreign_file_is_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(InputError, match="not a payalloc ledger"):
        open_ledger(text)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(InputError, match="not a payalloc ledger"):
        open_ledger(other)
    with pytest.raises(InputError, match="not a payalloc ledger"):
        init_ledger(other)


def test_newer_schema_is_refused(ledger_path: Path) -> None:
    c = sqlite3.connect(ledger_path)
    c.execute("PRAGMA user_version = 99")
    c.close()
    with pytest.raises(InputError, match="newer than this payalloc"):
        open_ledger(ledger_path)


def test_triggers_refuse_over_allocation_and_deletes(conn: sqlite3.Connection) -> None:
    add_client(conn, "C1")
    add_charge(conn, "CH1", "C1", "2026-01-01", 10_000)
    add_payment(conn, "P1", "C1", "2026-01-02", 6_000, apply_to="specific")
    insert = (
        "INSERT INTO remittances (payment_id, charge_id, client_id, amount_cents, source, staff, created_at)"
        " VALUES (1, 1, 1, ?, 'manual', 'x', '2026-01-02T00:00:00Z')"
    )
    with pytest.raises(sqlite3.IntegrityError, match="over-allocation of the payment"), write_txn(conn):
        conn.execute(insert, (6_001,))
    with write_txn(conn):
        conn.execute(insert, (6_000,))
    assert conn.execute("SELECT applied_cents FROM payments").fetchone()[0] == 6_000
    assert conn.execute("SELECT applied_cents FROM charges").fetchone()[0] == 6_000
    with pytest.raises(sqlite3.IntegrityError, match="never deleted"), write_txn(conn):
        conn.execute("DELETE FROM remittances")
    with pytest.raises(sqlite3.IntegrityError, match="immutable"), write_txn(conn):
        conn.execute("UPDATE charges SET amount_cents = 1")


@pytest.mark.parametrize("amounts", [(10_000, 6_000), (6_000, 6_000)], ids=["payment", "charge"])
def test_job_remittances_over_allocating_together_are_refused_by_the_caches(
    conn: sqlite3.Connection, amounts: tuple[int, int]
) -> None:
    """Each row of a job chunk passes the guard alone (it sees the caches before the chunk);
    their sum breaks the CHECK on applied_cents when the job adds them: nothing is written."""
    add_client(conn, "C1")
    add_charge(conn, "CH1", "C1", "2026-01-01", amounts[0])
    add_charge(conn, "CH2", "C1", "2026-01-01", 10_000)
    add_payment(conn, "P1", "C1", "2026-01-02", 10_000)
    add_payment(conn, "P2", "C1", "2026-01-02", 10_000)
    if amounts[0] == 10_000:  # one payment, two charges: 16,000 of a 10,000 payment
        pairs = [Allocation(1, 1, 1, 10_000, "oldest"), Allocation(1, 2, 1, 6_000, "oldest")]
    else:  # two payments, one charge: 12,000 of a 6,000 charge
        pairs = [Allocation(1, 1, 1, 6_000, "oldest"), Allocation(2, 1, 1, 6_000, "oldest")]
    with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed: applied_cents"), write_txn(conn):
        run = conn.execute("INSERT INTO job_runs (started_at, status) VALUES ('2026-01-03', 'running')").lastrowid
        job_sql.insert_remittances(conn, pairs, run, "2026-01-03T00:00:00Z")
    assert conn.execute("SELECT count(*) FROM remittances").fetchone()[0] == 0
    assert conn.execute("SELECT sum(applied_cents) FROM payments").fetchone()[0] == 0


def test_init_adopts_an_empty_file_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "touched.db"
    path.touch(mode=0o644)
    path.chmod(0o644)
    created, applied = init_ledger(path)
    assert not created and applied == ["0001_initial", "0002_cheap_checks_and_job_caches"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_init_warns_about_a_ledger_readable_by_others(cli, ledger_path: Path) -> None:  # type: ignore[no-untyped-def]
    ledger_path.chmod(0o644)
    result = cli("init")
    assert result.exit_code == 0
    assert "readable by others" in result.stderr


def test_check_warns_about_a_ledger_readable_by_others(cli, ledger_path: Path) -> None:  # type: ignore[no-untyped-def]
    # A copy made with cp or restored from a backup tool keeps no 0600: check is where it shows.
    assert "readable by others" not in cli("check").stderr
    ledger_path.chmod(0o640)
    result = cli("check")
    assert result.exit_code == 0  # a warning, not a violation of the ledger's invariants
    assert f"ledger {ledger_path} is readable by others (mode 640)" in result.stderr


@pytest.mark.parametrize("value", ["abc", "-5", "1.5", " 500", "1_000", "٥٠٠", "2147483648", "99999999999"])
def test_a_bad_busy_timeout_is_a_usage_error_naming_the_variable(cli, value: str) -> None:  # type: ignore[no-untyped-def]
    """Read when the ledger is opened, so one sentence and exit 2 (not "internal error", exit 1, from
    every command); --version and --help need no ledger and still work."""
    for command in (["unallocated"], ["run-job", "-q"], ["init"]):
        result = cli(*command, env={"PAYALLOC_BUSY_TIMEOUT_MS": value})
        assert result.exit_code == 2, (command, result.stderr)
        assert result.stdout == ""
        assert result.stderr == (
            f"error: PAYALLOC_BUSY_TIMEOUT_MS is {value!r}: it must be a whole number of milliseconds"
            " from 0 to 2147483647 (unset, it is 30000)\n")
    assert cli("--version", env={"PAYALLOC_BUSY_TIMEOUT_MS": value}).exit_code == 0
    new = cli.ledger.with_name("new.db")
    assert Cli(new)("init", env={"PAYALLOC_BUSY_TIMEOUT_MS": value}).exit_code == 2
    assert not new.exists()


@pytest.mark.parametrize(("value", "ms"), [("0", 0), ("1500", 1500), ("", 30000), ("2147483647", 2147483647)])
def test_a_whole_busy_timeout_is_what_the_connection_waits(
    ledger_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, ms: int
) -> None:
    monkeypatch.setenv("PAYALLOC_BUSY_TIMEOUT_MS", value)  # empty, as Click reads PAYALLOC_DB: unset
    conn = open_ledger(ledger_path)
    try:
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == ms
    finally:
        conn.close()
