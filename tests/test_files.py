"""payalloc/files.py: an export or backup is put in place whole, and never over a file it must not replace."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from payalloc.files import place_new
from tests.conftest import ROOT, SAMPLE, Cli
from tests.test_check import build_clean_ledger


def finished(tmp_path: Path) -> Path:
    path = tmp_path / ".export.tmp"
    path.write_text("journal\n")
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("links", [True, False], ids=["hard links", "no hard links (FAT, SMB)"])
def test_a_finished_file_takes_a_free_name_whole_and_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, links: bool
) -> None:
    if not links:
        def refuse(src: object, dst: object) -> None:
            raise OSError(errno.EPERM, "Operation not permitted")
        monkeypatch.setattr(os, "link", refuse)
    dest = tmp_path / "journal.csv"
    place_new(finished(tmp_path), dest)
    assert dest.read_text() == "journal\n" and stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["journal.csv"]  # the temporary name is gone

    other = finished(tmp_path)
    with pytest.raises(FileExistsError):
        place_new(other, dest)  # taken: refused, the file there untouched
    assert dest.read_text() == "journal\n" and other.exists()


def test_another_failure_to_link_is_not_mistaken_for_a_missing_feature(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "link", no_space)
    with pytest.raises(OSError, match="No space"):
        place_new(finished(tmp_path), tmp_path / "journal.csv")
    assert not (tmp_path / "journal.csv").exists()


# --- every file payalloc creates (ledger, export, backup), where it cannot be created -----------

def _in_each_place(tmp_path: Path, place: Path, ledger: Path) -> list[tuple[list[str], Path, str]]:
    """(command line, ledger for --db, the sentence's start) for each command that creates a file in `place`."""
    return [
        (["init"], place / "new.db", f"cannot create ledger {place / 'new.db'}"),
        (["gl", "export", "--csv", "-o", str(place / "j.csv")], ledger, f"cannot write {place / 'j.csv'}"),
        (["backup", str(place / "b.db")], ledger, f"cannot create the backup {place / 'b.db'}"),
    ]


@pytest.fixture
def unwritable(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory no file can be created in, and the reason the system gives: chattr +i as root
    (root ignores permissions), mode 0555 otherwise."""
    place = tmp_path / "locked"
    place.mkdir()
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(place)], capture_output=True, check=False).returncode != 0:
            pytest.skip("chattr +i is not available here")
        undo = ["chattr", "-i", str(place)]
        reason = "Operation not permitted"
    else:
        place.chmod(0o555)
        undo = ["chmod", "755", str(place)]
        reason = "Permission denied"
    try:
        yield place, reason
    finally:
        subprocess.run(undo, check=True)


def test_a_directory_that_refuses_new_files_is_one_sentence_and_exit_3(
    tmp_path: Path, ledger_path: Path, unwritable: tuple[Path, str]
) -> None:
    place, reason = unwritable
    for args, db, says in _in_each_place(tmp_path, place, ledger_path):
        result = Cli(db)(*args)
        assert result.exit_code == 3, (args, result.stderr)  # was 1, "internal error (PermissionError)"
        assert result.stderr == f"error: {says}: {reason}; nothing was written\n", args
        assert list(place.iterdir()) == []


@pytest.fixture
def unsearchable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory this user may not enter (mode 0000): looking at a path under it (exists,
    is_dir) raises PermissionError. Root enters anything, so as root stat() is made to refuse."""
    place = tmp_path / "private"
    place.mkdir()
    if os.geteuid() == 0:
        real_stat = os.stat

        def refuse(path: object, *args: object, **kwargs: object) -> os.stat_result:
            if str(path).startswith(f"{place}{os.sep}"):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]
        monkeypatch.setattr(os, "stat", refuse)
        yield place
        return
    place.chmod(0)
    try:
        yield place
    finally:
        place.chmod(0o700)


def test_a_path_under_a_directory_the_user_may_not_enter_is_one_sentence_and_exit_3(
    ledger_path: Path, unsearchable: Path
) -> None:
    inside = unsearchable / "sub"
    cases = [
        (["init"], inside / "new.db", f"cannot create ledger {inside / 'new.db'}: Permission denied;"
                                      " nothing was written"),
        (["backup", str(inside / "b.db")], ledger_path,
         f"cannot write backup destination {inside / 'b.db'}: Permission denied; nothing was written"),
        (["gl", "export", "--csv", "-o", str(inside / "j.csv")], ledger_path,
         f"cannot write export file {inside / 'j.csv'}: Permission denied; nothing was written"),
        (["import", "clients", str(inside / "c.csv")], ledger_path, f"cannot read {inside / 'c.csv'}: Permission denied"),
        (["apply", "--file", str(inside / "a.csv")], ledger_path, f"cannot read {inside / 'a.csv'}: Permission denied"),
    ]
    before = ledger_path.read_bytes()
    for args, db, says in cases:
        result = Cli(db)(*args)
        assert (result.exit_code, result.stderr) == (3, f"error: {says}\n"), args  # was 1, internal error
    assert ledger_path.read_bytes() == before


@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[None]:
    """`path` (a file or a directory) made unwritable for this user: chattr +i as root (root
    ignores file modes), mode 0500 otherwise."""
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False).returncode != 0:
            pytest.skip("chattr +i is not available here")
        undo = ["chattr", "-i", str(path)]
    else:
        path.chmod(0o500)
        undo = ["chmod", "700", str(path)]
    try:
        yield
    finally:
        subprocess.run(undo, check=True)


def test_a_ledger_the_user_may_only_read_is_read_and_refuses_a_write_in_one_sentence(ledger_path: Path) -> None:
    cli = Cli(ledger_path)
    before = ledger_path.read_bytes()
    with _read_only(ledger_path):
        assert cli("client", "list").exit_code == 0  # an auditor's copy: reading works
        result = cli("import", "clients", str(SAMPLE / "clients.csv"))
        assert (result.exit_code, result.stderr) == (  # was 1, "the ledger could not be used"
            3, f"error: ledger {ledger_path} is read-only for this user (its file mode, or a read-only file"
               " system): nothing was written\n")
    assert ledger_path.read_bytes() == before


def test_a_ledger_in_a_directory_the_user_may_not_write_says_why_it_cannot_be_opened(ledger_path: Path) -> None:
    assert not Path(f"{ledger_path}-shm").exists()  # closed: SQLite must make it again
    with _read_only(ledger_path.parent):
        result = Cli(ledger_path)("client", "list")
    assert (result.exit_code, result.stderr) == (  # was "(attempt to write a readonly database)"
        3, f"error: cannot open ledger {ledger_path}: SQLite makes its -wal and -shm files beside it, and this user"
           f" may not create files in {ledger_path.parent}; nothing was done\n")


def test_a_symbolic_link_loop_on_the_way_is_named_not_called_missing(tmp_path: Path, ledger_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    reason = "Too many levels of symbolic links; nothing was written"
    for args, db, says in [
        (["init"], loop / "x.db", f"cannot create ledger {loop / 'x.db'}: {reason}"),  # was "directory loop does not exist"
        (["gl", "export", "--csv", "-o", str(loop / "j.csv")], ledger_path, f"cannot write export file {loop / 'j.csv'}: {reason}"),
        (["backup", str(loop / "b.db")], ledger_path, f"cannot write backup destination {loop / 'b.db'}: {reason}"),
        (["init"], tmp_path / "nowhere" / "x.db",
         f"cannot create ledger {tmp_path / 'nowhere' / 'x.db'}: directory {tmp_path / 'nowhere'} does not exist"),
    ]:
        result = Cli(db)(*args)
        assert (result.exit_code, result.stderr) == (3, f"error: {says}\n"), args


def test_a_read_only_file_system_is_one_sentence_and_exit_3(
    tmp_path: Path, ledger_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    place = tmp_path / "ro"
    place.mkdir()
    real_open = os.open

    def read_only(path: object, flags: int, *args: object, **kwargs: object) -> int:
        if str(path).startswith(str(place)) and flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", read_only)
    for args, db, says in _in_each_place(tmp_path, place, ledger_path):
        result = Cli(db)(*args)
        assert result.exit_code == 3, (args, result.stderr)  # was 1, "internal error (OSError)"
        assert result.stderr == f"error: {says}: Read-only file system; nothing was written\n", args
        assert list(place.iterdir()) == []


# --- a full disk: the same sentence, exit 1, wherever it is met ------------------------------------

def no_space(*args: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_an_export_to_a_full_disk_says_so_and_leaves_nothing(
    tmp_path: Path, ledger_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "out" / "journal.csv"
    dest.parent.mkdir()
    monkeypatch.setattr(os, "fsync", no_space)  # the export's last write: where a full disk is met
    result = Cli(ledger_path)("gl", "export", "--csv", "-o", str(dest))
    assert result.exit_code == 1, result.stderr  # was 1 too, but as "internal error (OSError) ... report it"
    assert result.stderr == (f"error: the disk is full: cannot write {dest}; nothing was written, free some space"
                             " and run the command again\n")
    assert list(dest.parent.iterdir()) == []  # no temporary file left either


def test_the_run_job_lock_on_a_full_disk_says_so(ledger_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from payalloc.errors import DiskFull
    from payalloc.ledger import connection, writers

    (ledger_path.parent / (ledger_path.name + ".lock")).unlink(missing_ok=True)
    monkeypatch.setattr(writers, "open_beside", no_space)
    with pytest.raises(DiskFull, match=r"^the disk is full: cannot create the run-job lock .*ledger\.db\.lock;"), \
            connection.job_lock(ledger_path):
        pass


FULL = "/dev/full"  # every write to it fails with ENOSPC


@pytest.mark.skipif(not os.path.exists(FULL), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("args", [["payment", "list"], ["gl", "show", "--csv"], ["client", "list", "--json"]],
                         ids=" ".join)
def test_output_to_a_full_disk_says_so(tmp_path: Path, args: list[str]) -> None:
    """Block-buffered stdout (PYTHONUNBUFFERED unset, as for a cron job) holds a short output until the
    final flush: that too must meet the error boundary, not Python's exit (status 120, "Exception ignored")."""
    ledger_path = tmp_path / "ledger.db"
    build_clean_ledger(ledger_path)
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    with open(FULL, "w") as full:
        done = subprocess.run([sys.executable, "-m", "payalloc", "--db", str(ledger_path), *args], stdout=full,
                              stderr=subprocess.PIPE, text=True, env={**environ, "PYTHONPATH": str(ROOT)},
                              timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert done.stderr == ("error: the disk is full: the output could not be written; nothing was changed, free"
                           " some space and run the command again\n")


@pytest.mark.skipif(not os.path.exists(FULL), reason="needs /dev/full (Linux)")
def test_output_to_a_full_disk_after_a_change_says_the_change_was_saved(ledger_path: Path, tmp_path: Path) -> None:
    """A clerk who read "nothing was changed" would record the payment twice."""
    clients = tmp_path / "clients.csv"
    clients.write_text("client_id,name\nC1,Someone\n")
    assert Cli(ledger_path)("import", "clients", str(clients)).exit_code == 0
    with open(FULL, "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "payalloc", "--db", str(ledger_path), "payment", "record", "--client", "C1",
             "--amount", "10.00", "--date", "2026-11-20", "--apply-to", "oldest", "--id", "P1"],
            stdout=full, stderr=subprocess.PIPE, text=True, timeout=60, check=False,
            env={**os.environ, "PYTHONPATH": str(ROOT), "PAYALLOC_STAFF": "clerk1"})
    assert done.returncode == 1, done.stderr
    assert done.stderr == ("error: the disk is full: the output could not be written, but the change was saved in"
                           " the ledger; free some space, and check the result before running the command again"
                           " (run-job and import are safe to run again)\n")
    shown = Cli(ledger_path)("payment", "show", "P1")
    assert shown.exit_code == 0, shown.stderr


def _payalloc_without(closed: int, ledger: Path, *args: str, stderr: object = subprocess.PIPE,
                      stdout: object = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    """payalloc started with standard stream `closed` (0, 1 or 2) closed, as `<&-`, `>&-` or `2>&-` do."""
    return subprocess.run([sys.executable, "-m", "payalloc", "--db", str(ledger), *args],
                          stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, text=True, timeout=60, check=False,
                          preexec_fn=lambda: os.close(closed),
                          env={**os.environ, "PYTHONPATH": str(ROOT), "PAYALLOC_STAFF": "clerk1"})


LOST = "error: stdout is closed: the output could not be written"


@pytest.mark.parametrize(("closed", "args", "code", "says"), [
    (1, ["client", "list"], 1, f"{LOST}; nothing was changed, open it (>/dev/null discards the output) and run"
                               " the command again\n"),
    (1, ["payment", "record", "--client", "C1", "--amount", "1.00", "--date", "2026-11-20", "--apply-to", "oldest",
         "--id", "P9"], 1,  # was "internal error (AttributeError); nothing was written": the payment was saved
     f"{LOST}, but the change was saved in the ledger; open it (>/dev/null discards the output), and check the"
     " result before running the command again (run-job and import are safe to run again)\n"),
    (1, ["run-job", "-q"], 0, ""),  # prints nothing: a closed stdout is no matter
    (1, ["--version"], 1, f"{LOST}; nothing was changed, open it (>/dev/null discards the output) and run"
                          " the command again\n"),  # was a traceback
    (0, ["import", "clients", "-"], 3, "error: stdin is empty: expected a header row (client_id, name,"
                                       " responsible_party)\n"),
], ids=["stdout list", "stdout record", "stdout run-job -q", "stdout --version", "stdin import -"])
def test_a_closed_standard_stream_is_one_sentence_and_the_right_status(
    tmp_path: Path, closed: int, args: list[str], code: int, says: str
) -> None:
    """Python has None for a stream closed at start: every print or read was an internal error."""
    ledger_path = tmp_path / "ledger.db"
    build_clean_ledger(ledger_path)
    done = _payalloc_without(closed, ledger_path, *args, **({"stdout": subprocess.DEVNULL} if closed == 0 else {}))
    assert (done.returncode, done.stderr) == (code, says)
    if "P9" in args:
        assert Cli(ledger_path)("payment", "show", "P9").exit_code == 0


@pytest.mark.skipif(not os.path.exists(FULL), reason="needs /dev/full (Linux)")
def test_a_closed_or_full_stderr_keeps_the_exit_status_of_the_refusal(ledger_path: Path) -> None:
    """Nowhere to say it (2>&-, 2>/dev/full): the refusal must still exit 3, not 1."""
    assert _payalloc_without(2, ledger_path, "client", "show", "C-NONE").returncode == 3  # was 1 (AttributeError)
    with open(FULL, "w") as full:
        done = subprocess.run([sys.executable, "-m", "payalloc", "--db", str(ledger_path), "client", "show", "C-NONE"],
                              stdout=subprocess.PIPE, stderr=full, text=True, timeout=60, check=False,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert (done.returncode, done.stdout) == (3, "")  # was 1


@pytest.mark.skipif(not os.path.exists(FULL), reason="needs /dev/full (Linux)")
def test_a_json_refusal_with_nowhere_to_print_keeps_its_sentence_and_status(ledger_path: Path, tmp_path: Path) -> None:
    """--json prints the refusal's object on stdout too: to a closed stdout it exited 120 ("Exception
    ignored ... Bad file descriptor"), to a full disk with a traceback and exit 1."""
    bad = tmp_path / "clients.csv"
    bad.write_text("client_id,name\nC-9,\n")
    says = f"error: {bad}: 1 problem; nothing was imported\n  {bad}: line 2, column name: is required\n"
    closed = _payalloc_without(1, ledger_path, "import", "clients", str(bad), "--json")
    assert (closed.returncode, closed.stderr) == (3, says)
    with open(FULL, "w") as full:
        done = subprocess.run([sys.executable, "-m", "payalloc", "--db", str(ledger_path), "import", "clients", str(bad),
                               "--json"], stdout=full, stderr=subprocess.PIPE, text=True, timeout=60, check=False,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert (done.returncode, done.stderr) == (3, says)


@pytest.mark.skipif(not os.path.exists(FULL), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("args", [["--version"], ["--help"]], ids=" ".join)
def test_help_and_version_to_a_full_disk_say_so(ledger_path: Path, args: list[str]) -> None:
    with open(FULL, "w") as full:
        done = subprocess.run([sys.executable, "-m", "payalloc", *args], stdout=full, stderr=subprocess.PIPE,
                              text=True, timeout=60, check=False, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert (done.returncode, done.stderr) == (  # was a traceback
        1, "error: the disk is full: the output could not be written; nothing was changed, free some space and"
           " run the command again\n")


def test_an_export_removes_the_temporary_files_of_killed_exports_never_a_live_ones(
    tmp_path: Path, ledger_path: Path
) -> None:
    place = tmp_path / "exports"
    place.mkdir()
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    stale, kept = f".monday.csv.{ended.pid}.tmp", f".tuesday.csv.{os.getppid()}.tmp"  # a process that is alive
    for name in (stale, kept):
        (place / name).write_text("journal")
        (place / name).chmod(0o600)
    result = Cli(ledger_path)("gl", "export", "--csv", "-o", str(place / "wednesday.csv"))
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in place.iterdir()) == sorted([kept, "wednesday.csv"])


def test_a_ledger_whose_file_name_is_not_utf8_is_written_to(tmp_path: Path) -> None:
    """A name made on a Latin-1 system (b"caf\xe9.db"): each write read the name back from SQLite as
    text, and was "the ledger could not be used (Could not decode to UTF-8 ...)", exit 1."""
    ledger = tmp_path / os.fsdecode(b"caf\xe9.db")
    cli = Cli(ledger)
    result = cli("init")
    assert result.exit_code == 0, result.stderr
    result = cli("import", "clients", str(SAMPLE / "clients.csv"))
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / os.fsdecode(b"caf\xe9.db.writers")).exists()  # the writers' turns found the file


@pytest.fixture
def foreign_shm(ledger_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The ledger's -shm as this user cannot open it (mode 000: another user's file, as 0600, looks
    so too). Root opens any file: there SQLite's failure and the refusal to open the -shm are simulated."""
    side = ledger_path.with_name(ledger_path.name + "-shm")
    side.touch(mode=0)
    if os.geteuid() == 0:
        import sqlite3

        def cannot_open(*args: object, **kwargs: object) -> None:
            error = sqlite3.OperationalError("unable to open database file")
            error.sqlite_errorcode = sqlite3.SQLITE_CANTOPEN  # type: ignore[attr-defined]
            raise error
        real_open = os.open

        def refuse(path: object, *args: object, **kwargs: object) -> int:
            if str(path) == str(side):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real_open(path, *args, **kwargs)  # type: ignore[arg-type]
        monkeypatch.setattr(sqlite3, "connect", cannot_open)
        monkeypatch.setattr(os, "open", refuse)
    return side


def test_a_wal_or_shm_file_the_user_cannot_open_is_named(ledger_path: Path, foreign_shm: Path) -> None:
    result = Cli(ledger_path)("client", "list")
    assert (result.exit_code, result.stderr) == (  # was "(unable to open database file)"
        3, f"error: cannot open ledger {ledger_path}: this user cannot open its SQLite file ledger.db-shm"
           " (Permission denied); nothing was done\n")


def test_a_relative_ledger_path_in_a_deleted_current_directory_is_one_sentence(
    ledger_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shell or a cron job whose directory was removed: `../ledger.db` still resolves, but
    os.getcwd() fails, and opening the ledger was "internal error (FileNotFoundError)"."""
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    for args, doing in ((["client", "list"], "open"), (["init"], "create")):
        result = Cli(Path("../ledger.db"))(*args)
        assert (result.exit_code, result.stderr) == (3, (
            f"error: cannot {doing} ledger ../ledger.db: it is relative to the current directory, which cannot"
            " be found (No such file or directory: deleted?); cd to a directory, or give an absolute path;"
            " nothing was done\n")), args
    assert Cli(ledger_path)("client", "list").exit_code == 0  # an absolute path works there


def test_a_locale_that_is_not_utf8_prints_names_it_cannot_encode(ledger_path: Path, tmp_path: Path) -> None:
    """LANG=C with Python's UTF-8 mode and locale coercion off: stdout is ASCII. A name such as
    "Zoë 李" was "internal error (UnicodeEncodeError)"; JSON now carries it as escapes, the same text."""
    clients = tmp_path / "clients.csv"
    clients.write_text("client_id,name\nC1,Zoë 李\n", encoding="utf-8")
    assert Cli(ledger_path)("import", "clients", str(clients)).exit_code == 0
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "LANG": "C", "LC_ALL": "C", "PYTHONUTF8": "0",
               "PYTHONCOERCECLOCALE": "0", "PYTHONIOENCODING": ""}
    for args in (["client", "list", "--json"], ["client", "list"], ["client", "show", "C1"]):
        done = subprocess.run([sys.executable, "-m", "payalloc", "--db", str(ledger_path), *args], env=environ,
                              capture_output=True, timeout=60, check=False)
        assert (done.returncode, done.stderr) == (0, b""), args
    done = subprocess.run([sys.executable, "-m", "payalloc", "--db", str(ledger_path), "client", "list", "--json"],
                          env=environ, capture_output=True, timeout=60, check=False)
    import json

    assert [row["name"] for row in json.loads(done.stdout)] == ["Zoë 李"]
