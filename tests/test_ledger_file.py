"""The ledger file as the CLI meets it: newer or older schema, foreign files, missing paths, --debug."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from payalloc.ledger.migrations import SCHEMA_VERSION
from tests.conftest import ROOT, Cli

# Commands other than init, as a cron job or a clerk would type them.
COMMANDS = [
    ["check"],
    ["check", "--json"],
    ["backup", "{tmp}/copy.db"],
    ["unallocated"],
    ["payment", "list"],
    ["run-job", "-q"],
    ["apply", "P1", "CH1=10.00"],
]


def fingerprint(path: Path) -> tuple[str, list[str]]:
    """The file's bytes and the names beside it: a refused command must change neither."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "-"
    return digest, sorted(p.name for p in path.parent.iterdir())


def run(ledger: Path, args: list[str], tmp_path: Path) -> tuple[int, str, str]:
    result = Cli(ledger)(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    return result.exit_code, result.stdout, result.stderr


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_a_newer_schema_is_refused_and_left_alone(ledger_path: Path, tmp_path: Path, args: list[str]) -> None:
    c = sqlite3.connect(ledger_path)
    c.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    c.close()
    before = fingerprint(ledger_path)
    code, out, err = run(ledger_path, args, tmp_path)
    assert code == 3
    line = one_error_line(err)
    assert f"schema version {SCHEMA_VERSION + 1}" in line and "newer than this payalloc" in line
    assert str(ledger_path) in line
    assert out == ""
    assert fingerprint(ledger_path) == before


def test_init_refuses_a_newer_schema_without_migrating(ledger_path: Path) -> None:
    c = sqlite3.connect(ledger_path)
    c.execute("PRAGMA user_version = 99")
    c.close()
    before = fingerprint(ledger_path)
    result = Cli(ledger_path)("init")
    assert result.exit_code == 3
    assert "newer than this payalloc" in one_error_line(result.stderr)
    assert fingerprint(ledger_path) == before


def test_an_older_schema_asks_for_init(ledger_path: Path, tmp_path: Path) -> None:
    c = sqlite3.connect(ledger_path)
    c.execute("PRAGMA user_version = 0")
    c.close()
    code, _, err = run(ledger_path, ["check"], tmp_path)
    assert code == 3
    assert "payalloc --db" in one_error_line(err) and "init" in err


def _text(path: Path) -> None:
    path.write_text("client_id,name\nC1,Someone\n")


def _binary(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 64)


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _other_sqlite(path: Path) -> None:
    c = sqlite3.connect(path)
    c.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    c.execute("INSERT INTO notes (body) VALUES ('not a ledger')")
    c.commit()
    c.close()


def _garbled_header(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4080)


FOREIGN = [_text, _binary, _empty, _other_sqlite, _garbled_header]


FOREIGN_CASES = [
    pytest.param(make, args, id=f"{make.__name__.strip('_')}-{' '.join(args)}")
    for make in FOREIGN
    for args in (["check"], ["backup", "{tmp}/copy.db"], ["unallocated"], ["init"])
    if not (make is _empty and args == ["init"])  # an empty file is an empty database: init may use it
]


@pytest.mark.parametrize(("make", "args"), FOREIGN_CASES)
def test_a_file_that_is_not_a_payalloc_ledger_is_refused(
    tmp_path: Path, make: object, args: list[str]
) -> None:
    path = tmp_path / "notes.db"
    make(path)  # type: ignore[operator]
    before = fingerprint(path)
    code, out, err = run(path, args, tmp_path)
    assert code == 3, err
    line = one_error_line(err)
    assert "not a payalloc ledger" in line and str(path) in line
    assert out == ""
    assert fingerprint(path) == before  # not a byte changed, no side file made
    assert not (tmp_path / "copy.db").exists()


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_a_missing_ledger_is_named_and_not_created(tmp_path: Path, args: list[str]) -> None:
    path = tmp_path / "typo.db"
    code, out, err = run(path, args, tmp_path)
    assert code == 3
    line = one_error_line(err)
    assert f"ledger {path} does not exist" in line and "init" in line
    assert out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no ledger, no -wal, no lock, no copy


def test_a_missing_ledger_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "from-env.db"
    result = Cli(tmp_path / "ignored.db").runner.invoke(
        __import__("payalloc.cli", fromlist=["app"]).app, ["check"], env={"PAYALLOC_DB": str(path)}
    )
    assert result.exit_code == 3
    assert str(path) in one_error_line(result.stderr)
    assert not path.exists()


def test_a_directory_or_missing_directory_is_refused(tmp_path: Path) -> None:
    code, _, err = run(tmp_path, ["check"], tmp_path)
    assert code == 3 and "is a directory" in one_error_line(err)
    missing = tmp_path / "no" / "such" / "dir" / "l.db"
    code, _, err = run(missing, ["check"], tmp_path)
    assert code == 3 and str(missing) in one_error_line(err)
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("db", ["", "  "])
@pytest.mark.parametrize("args", [["init"], ["check"]], ids=" ".join)
def test_an_empty_db_option_is_a_usage_error_not_the_current_directory(tmp_path: Path, db: str,
                                                                      args: list[str]) -> None:
    result = Cli(tmp_path / "ignored.db").runner.invoke(
        __import__("payalloc.cli", fromlist=["app"]).app, ["--db", db, *args])
    assert result.exit_code == 2
    assert one_error_line(result.stderr) == "error: --db is empty: give the ledger file, e.g. --db practice.db"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [["init"], ["check"]], ids=" ".join)
def test_an_empty_db_variable_is_a_usage_error_not_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    """PAYALLOC_DB=$LEDGER with $LEDGER unset: Click reads an empty variable as unset, which made
    it ./payalloc.db. Set but empty is refused, as a blank one is; --db still overrides it."""
    from payalloc.cli import app

    monkeypatch.chdir(tmp_path)
    runner = Cli(tmp_path / "ignored.db").runner
    for value, sentence in (("", "PAYALLOC_DB is set but empty: give the ledger file, or unset it to use"
                                 " payalloc.db in the current directory"),
                            (" ", "PAYALLOC_DB is empty: give the ledger file, e.g. --db practice.db")):
        result = runner.invoke(app, args, env={"PAYALLOC_DB": value})
        assert (result.exit_code, one_error_line(result.stderr)) == (2, f"error: {sentence}")
        assert list(tmp_path.iterdir()) == []
    given = runner.invoke(app, ["--db", str(tmp_path / "l.db"), "init"], env={"PAYALLOC_DB": ""})
    assert given.exit_code == 0 and (tmp_path / "l.db").exists()


def _payalloc(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "payalloc", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_debug_shows_a_traceback_and_only_debug(tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    plain = _payalloc("--db", str(path), "check")
    assert plain.returncode == 3
    assert "Traceback" not in plain.stderr
    assert plain.stderr.strip() == (f"error: ledger {path} does not exist: give the practice's ledger with --db or"
                                    f" PAYALLOC_DB (payalloc --db {path} init creates a new, empty one)")

    debug = _payalloc("--debug", "--db", str(path), "check")
    assert debug.returncode == 3  # the same status: scripts may add --debug to see why
    assert "Traceback (most recent call last)" in debug.stderr
    assert "LedgerMissing" in debug.stderr and str(path) in debug.stderr
    assert not path.exists()


def test_debug_traceback_for_a_foreign_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    _other_sqlite(path)
    plain = _payalloc("--db", str(path), "check")
    assert plain.returncode == 3 and "Traceback" not in plain.stderr
    debug = _payalloc("--debug", "--db", str(path), "check")
    assert "Traceback (most recent call last)" in debug.stderr and "InputError" in debug.stderr
    assert debug.returncode == 3 and debug.stderr.rstrip().endswith("is not a payalloc ledger")


@pytest.mark.parametrize(("code", "message", "says"), [
    (sqlite3.SQLITE_NOTADB, "file is not a database", "x.db is not a payalloc ledger (file is not a database)"),
    # the disk or the file system, not the file, is at fault: say so
    (sqlite3.SQLITE_IOERR, "disk I/O error", "cannot open ledger x.db (disk I/O error); nothing was done"),
    (sqlite3.SQLITE_CANTOPEN, "unable to open database file",
     "cannot open ledger x.db (unable to open database file); nothing was done"),
])
def test_a_ledger_that_cannot_be_opened_is_described_by_what_went_wrong(code: int, message: str, says: str) -> None:
    from payalloc.ledger import connection

    error = sqlite3.DatabaseError(message)
    error.sqlite_errorcode = code  # as SQLite sets it
    assert str(connection._unusable(Path("x.db"), error)) == says


def test_a_run_job_lock_that_cannot_be_opened_is_one_sentence(ledger_path: Path) -> None:
    from payalloc.errors import InputError
    from payalloc.ledger.connection import job_lock

    lock = ledger_path.parent / (ledger_path.name + ".lock")
    lock.unlink(missing_ok=True)
    lock.mkdir()  # as good as a lock file of another user's
    with pytest.raises(InputError, match=r"cannot open the run-job lock .*ledger\.db\.lock \(Is a directory\)"), \
            job_lock(ledger_path):
        pass


@pytest.mark.parametrize("args", [["init"], *COMMANDS], ids=" ".join)
def test_a_fifo_is_refused_untouched(tmp_path: Path, args: list[str]) -> None:
    """Not only files: init chmod-ed any empty path to 0600 (a FIFO, /dev/null) before SQLite
    failed on it with "disk I/O error", exit 1; every other command said the same."""
    path = tmp_path / "pipe.db"
    os.mkfifo(path, 0o644)
    os.chmod(path, 0o644)  # whatever the umask
    code, out, err = run(path, args, tmp_path)
    assert code == 3, err
    assert one_error_line(err) == (f"error: {path} is not a regular file (a FIFO, a device or a socket),"
                                   " so not a payalloc ledger; nothing was done")
    assert out == ""
    assert stat.S_IMODE(path.lstat().st_mode) == 0o644 and stat.S_ISFIFO(path.lstat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe.db"]  # no -wal, lock or copy


def test_a_ledger_that_cannot_be_opened_on_a_full_disk_says_the_disk_is_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite says only "disk I/O error" when it cannot make the -shm file: with the ledger's disk
    (all but) full, that is the full disk (exit 1, as README's exit statuses say), not refused input."""
    from payalloc.errors import DiskFull, InputError
    from payalloc.ledger import connection

    error = sqlite3.OperationalError("disk I/O error")
    error.sqlite_errorcode = sqlite3.SQLITE_IOERR_SHMSIZE  # as SQLite sets it (extended code)
    real = os.statvfs(".")
    for free_blocks, kind in ((0, DiskFull), (real.f_bavail or 1 << 20, InputError)):
        room = os.statvfs_result((*real[:4], free_blocks, *real[5:]))
        monkeypatch.setattr(os, "statvfs", lambda path, room=room: room)
        said = connection._unusable(Path("x.db"), error)
        assert type(said) is kind and said.exit_code == (1 if kind is DiskFull else 3)
    assert str(connection._unusable(Path("x.db"), error)) == "cannot open ledger x.db (disk I/O error); nothing was done"
    monkeypatch.setattr(os, "statvfs", lambda path: os.statvfs_result((*real[:4], 0, *real[5:])))
    assert str(connection._unusable(Path("x.db"), error)) == (
        "the disk is full: cannot open ledger x.db, SQLite needs room beside it for its -wal and -shm files;"
        " nothing was written, free some space and run the command again")
