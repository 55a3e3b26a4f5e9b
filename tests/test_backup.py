"""`payalloc backup DEST`: a consistent copy while others write, owner-only, refusing to clobber."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, Cli
from tests.test_check import SENTINEL, build_clean_ledger, payment_cache


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)  # the usual umask: files would be world-readable without care
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    build_clean_ledger(path)
    return path


def dump(path: Path) -> list[str]:
    c = sqlite3.connect(path)
    try:
        return list(c.iterdump())
    finally:
        c.close()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_backup_is_owner_only_identical_and_passes_check(ledger: Path, tmp_path: Path, umask_022: None) -> None:
    dest = tmp_path / "out" / "copy.db"
    dest.parent.mkdir()
    result = Cli(ledger)("backup", str(dest))
    assert result.exit_code == 0, result.stderr
    assert mode(dest) == 0o600
    assert dump(dest) == dump(ledger)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["copy.db"]  # no partial or side files left
    assert "backup OK: 2 clients, 6 payments, 5 charges, 7 remittances checked" in result.stderr
    assert SENTINEL not in result.stdout + result.stderr
    checked = Cli(dest)("check")
    assert checked.exit_code == 0, checked.stdout


def test_existing_destination_is_refused_unless_force(ledger: Path, tmp_path: Path, umask_022: None) -> None:
    dest = tmp_path / "copy.db"
    dest.write_text("yesterday's backup")
    dest.chmod(0o644)
    result = Cli(ledger)("backup", str(dest))
    assert result.exit_code == 3
    assert "already exists" in result.stderr and "--force" in result.stderr
    assert dest.read_text() == "yesterday's backup"

    result = Cli(ledger)("backup", str(dest), "--force")
    assert result.exit_code == 0, result.stderr
    assert mode(dest) == 0o600  # replaced by a new owner-only file, not rewritten in place
    assert dump(dest) == dump(ledger)


@pytest.mark.parametrize("spelling", ["same", "dotdot", "hardlink", "symlink", "-wal", ".lock", ".writers"])
def test_the_ledger_itself_is_never_a_destination(ledger: Path, tmp_path: Path, spelling: str) -> None:
    before = dump(ledger)
    size = ledger.stat().st_size
    if spelling == "same":
        dest = ledger
    elif spelling == "dotdot":
        (tmp_path / "sub").mkdir()
        dest = tmp_path / "sub" / ".." / ledger.name
    elif spelling == "hardlink":
        dest = tmp_path / "link.db"
        os.link(ledger, dest)
    elif spelling == "symlink":
        dest = tmp_path / "sym.db"
        dest.symlink_to(ledger)
    else:  # one of the files kept beside it (the writers' lock too: replacing it would split the turns)
        dest = Path(str(ledger) + spelling)
    result = Cli(ledger)("backup", str(dest), "--force")
    assert result.exit_code == 3
    assert "is the ledger itself" in result.stderr
    assert dump(ledger) == before and ledger.stat().st_size == size
    assert Cli(ledger)("check").exit_code == 0


def test_bad_destinations_and_missing_ledger(ledger: Path, tmp_path: Path) -> None:
    result = Cli(ledger)("backup", str(tmp_path / "nowhere" / "copy.db"))
    assert result.exit_code == 3 and "nowhere does not exist" in result.stderr
    result = Cli(ledger)("backup", str(tmp_path))
    assert result.exit_code == 3 and "is a directory" in result.stderr

    missing = tmp_path / "typo.db"
    dest = tmp_path / "copy.db"
    result = Cli(missing)("backup", str(dest))
    assert result.exit_code == 3 and "typo.db does not exist" in result.stderr
    assert not missing.exists() and not dest.exists()
    assert not list(tmp_path.glob(".copy.db.*"))  # no partial file left behind
    assert "Traceback" not in result.stderr


def test_a_destination_that_is_a_symbolic_link_loop_is_refused_as_a_gl_export_is(ledger: Path, tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(tmp_path / "back")
    (tmp_path / "back").symlink_to(loop)
    for force, says in (([], "already exists; use --force to replace it"),
                        (["--force"], "is not a regular file; refusing to replace it")):
        result = Cli(ledger)("backup", str(loop), *force)
        assert (result.exit_code, result.stderr) == (  # was internal error (RuntimeError), exit 1
            3, f"error: backup destination {loop} {says}\n")
    assert loop.is_symlink() and not list(tmp_path.glob(".loop.*"))


def test_backup_of_a_ledger_with_violations_is_written_and_exits_5(ledger: Path, tmp_path: Path) -> None:
    payment_cache(ledger)
    dest = tmp_path / "copy.db"
    result = Cli(ledger)("backup", str(dest))
    assert result.exit_code == 5
    assert "was written" in result.stderr and "payment_cache_mismatch" in result.stderr
    assert dump(dest) == dump(ledger)  # faithful: the evidence is kept
    assert mode(dest) == 0o600


WRITER = r"""
import sys, time
from pathlib import Path
from payalloc.ledger.connection import open_ledger, write_txn

conn = open_ledger(Path(sys.argv[1]))
stop = Path(sys.argv[2])
n = 0
while not stop.exists():
    n += 1
    # One complete allocation per transaction: a copy that tore one apart would fail check.
    with write_txn(conn):
        cid = conn.execute("INSERT INTO clients (client_key, name) VALUES (?, 'w')", (f"W{n}",)).lastrowid
        ch = conn.execute(
            "INSERT INTO charges (charge_key, client_id, service_date, amount_cents, payer)"
            " VALUES (?, ?, '2026-03-01', 5000, 'self_pay')", (f"WCH{n}", cid)).lastrowid
        p = conn.execute(
            "INSERT INTO payments (payment_key, client_id, received_date, amount_cents, apply_to,"
            " entered_apply_to, status) VALUES (?, ?, '2026-03-02', 3000, 'specific', 'specific', 'ready')",
            (f"WP{n}", cid)).lastrowid
        r = conn.execute(
            "INSERT INTO remittances (payment_id, charge_id, client_id, amount_cents, source, staff, created_at)"
            " VALUES (?, ?, ?, 3000, 'manual', 'w', '2026-03-02T00:00:00Z')", (p, ch, cid)).lastrowid
        conn.execute("INSERT INTO audit (at, staff, action, remittance_id) VALUES"
                     " ('2026-03-02T00:00:00Z', 'w', 'apply', ?)", (r,))
    if n == 1:
        print("started", flush=True)
conn.close()
print(n, flush=True)
"""


@pytest.mark.slow
def test_backup_while_another_process_writes(ledger: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PAYALLOC_STAFF": "clerk1"}
    # A larger ledger so that each copy takes a while; the writer commits all through it.
    bulk = sqlite3.connect(ledger, isolation_level=None)
    bulk.execute("BEGIN")
    bulk.executemany(
        "INSERT INTO audit (at, staff, action, detail) VALUES ('2026-01-01T00:00:00Z', 'x', 'bulk', ?)",
        [("x" * 200,) for _ in range(20_000)],
    )
    bulk.execute("COMMIT")
    bulk.close()
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(ledger), str(stop)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "started"
        copies = []
        for i in range(4):
            dest = tmp_path / f"copy{i}.db"
            done = subprocess.run(
                [sys.executable, "-m", "payalloc", "--db", str(ledger), "backup", str(dest)],
                env=env, capture_output=True, text=True, timeout=120,
            )
            assert done.returncode == 0, done.stderr  # 0: the copy passed check (caches agree, etc.)
            assert mode(dest) == 0o600
            copies.append(dest)
            time.sleep(0.05)
    finally:
        stop.touch()
        out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    written = int(out.split()[-1])

    counts = []
    for dest in copies:
        c = sqlite3.connect(dest)
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        w = [c.execute(f"SELECT count(*) FROM {t} WHERE {k} LIKE 'W%'").fetchone()[0]
             for t, k in (("clients", "client_key"), ("charges", "charge_key"), ("payments", "payment_key"))]
        r = c.execute("SELECT count(*) FROM remittances WHERE staff = 'w'").fetchone()[0]
        c.close()
        assert w == [r, r, r]  # whole transactions only
        counts.append(r)
    assert counts == sorted(counts) and counts[-1] > counts[0] > 0  # the writer went on between copies
    assert counts[-1] <= written
    assert Cli(ledger)("check").exit_code == 0


def test_partial_copy_is_removed_when_the_copy_fails(ledger: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from payalloc.ledger import backup as files

    real_connect = sqlite3.connect

    def small_disk(target: Path, *args: object, **kwargs: object) -> sqlite3.Connection:
        if not str(target).endswith(".partial"):  # the ledger itself opens as usual
            return real_connect(target, *args, **kwargs)  # type: ignore[arg-type]
        dst = real_connect(target, **kwargs)  # type: ignore[arg-type]
        dst.execute("PRAGMA max_page_count = 5")  # the disk fills up after 5 pages
        return dst

    monkeypatch.setattr(files.sqlite3, "connect", small_disk)
    dest = tmp_path / "copy.db"
    result = Cli(ledger)("backup", str(dest))
    assert result.exit_code == 1, result.stderr  # a full disk, as for every command (README: exit statuses)
    assert result.stderr == f"error: the disk is full: cannot write the backup {dest}; nothing was written, free some" \
        " space and run the command again\n"
    assert "Traceback" not in result.stderr
    assert not dest.exists()
    assert not list(tmp_path.glob(".copy.db.*"))


def _gone_pid() -> int:
    """The pid of a process that has ended (reaped): what a backup killed with kill -9 leaves in names."""
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    return ended.pid


def test_a_backup_removes_the_partial_copies_of_killed_backups_never_a_live_ones(ledger: Path, tmp_path: Path) -> None:
    """A kill -9 leaves hidden full copies of the ledger (health data); the pid in their names says
    whether their process is gone."""
    place = tmp_path / "backups"
    place.mkdir()
    gone = _gone_pid()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = [f".monday.db.{gone}.partial{s}" for s in ("", "-wal", "-shm", "-journal")]
        kept = [f".tuesday.db.{live.pid}.partial", f".tuesday.db.{live.pid}.partial-wal",  # a backup running now
                f"monday.db.{gone}.partial", f".monday.db.{gone}.partial.txt", f".shared.db.{gone}.partial"]
        for name in stale + kept:
            (place / name).write_text("copy")
            (place / name).chmod(0o600)
        (place / f".shared.db.{gone}.partial").chmod(0o644)  # not one payalloc made
        result = Cli(ledger)("backup", str(place / "wednesday.db"))
        assert result.exit_code == 0, result.stderr
        assert sorted(p.name for p in place.iterdir()) == sorted([*kept, "wednesday.db"])
    finally:
        live.kill()
        live.wait()


@pytest.mark.slow
def test_a_backup_killed_with_kill_9_is_cleaned_up_by_the_next_one(ledger: Path, tmp_path: Path) -> None:
    place = tmp_path / "backups"
    place.mkdir()
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "PAYALLOC_STAFF": "clerk1"}
    killed = subprocess.run(  # SIGKILL at the 5th SQL statement: while the copy is checked
        [sys.executable, "-m", "payalloc", "--db", str(ledger), "backup", str(place / "a.db")],
        env={**environ, "PAYALLOC_TEST_HOOKS": "kill", "PAYALLOC_TEST_KILL_AT": "5"}, capture_output=True, timeout=60)
    assert killed.returncode == -9
    left = sorted(p.name for p in place.iterdir())
    assert left and all(name.startswith(".a.db.") and ".partial" in name for name in left), left
    done = subprocess.run([sys.executable, "-m", "payalloc", "--db", str(ledger), "backup", str(place / "b.db")],
                          env=environ, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in place.iterdir()) == ["b.db"]
