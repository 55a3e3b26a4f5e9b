"""The one way to open a ledger, and the one way to write to it.

Every write is `with write_txn(conn):`, which issues BEGIN IMMEDIATE before the first read:
Python's default mode would let two writers both read "60.00 unapplied" and both spend it,
and a deferred BEGIN fails at once with "database is locked" instead of waiting.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import sqlite3
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from payalloc import files
from payalloc.errors import (
    InputError,
    LedgerBusy,
    LedgerMissing,
    PayallocError,
    UsageError,
    disk_full,
    no_space,
)
from payalloc.ledger import writers
from payalloc.ledger.migrations import SCHEMA_VERSION

APPLICATION_ID = 0x50414C43  # "PALC": marks a SQLite file as a payalloc ledger
BUSY_TIMEOUT_MS = 30000  # how long a write waits for the ledger; PAYALLOC_BUSY_TIMEOUT_MS overrides it
MAX_BUSY_TIMEOUT_MS = 2**31 - 1  # SQLite's busy_timeout is a C int
SQLITE_SIDE_FILES = ("-journal", "-wal", "-shm")  # what SQLite keeps beside a database file
JOB_LOCK_SUFFIX = ".lock"  # <ledger>.lock: run-job's lock (job_lock)


def companion_files(path: Path) -> list[Path]:
    """The files kept beside a ledger: SQLite's, run-job's lock and the writers' turns."""
    return [path.with_name(path.name + suffix)
            for suffix in (*SQLITE_SIDE_FILES, JOB_LOCK_SUFFIX, writers.SUFFIX)]


def busy_timeout_ms() -> int:
    """PAYALLOC_BUSY_TIMEOUT_MS, read when a ledger is opened (not at import: a bad value must be a
    usage error of the command, not an internal error of every command). Empty counts as unset."""
    text = os.environ.get("PAYALLOC_BUSY_TIMEOUT_MS", "")
    if not text:
        return BUSY_TIMEOUT_MS
    # ASCII digits only: int() would take "-5", " 5", "1_000" and other scripts' digits.
    if not re.fullmatch(r"[0-9]{1,10}", text) or int(text) > MAX_BUSY_TIMEOUT_MS:
        raise UsageError(f"PAYALLOC_BUSY_TIMEOUT_MS is {text!r}: it must be a whole number of milliseconds"
                         f" from 0 to {MAX_BUSY_TIMEOUT_MS} (unset, it is {BUSY_TIMEOUT_MS})")
    return int(text)


def _connect(path: Path, mode: str) -> sqlite3.Connection:
    timeout_ms = busy_timeout_ms()
    uri = path.absolute().as_uri() + f"?mode={mode}"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=timeout_ms / 1000)
    except sqlite3.DatabaseError as error:
        raise _unusable(path, error) from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {timeout_ms:d}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute("PRAGMA trusted_schema = OFF")
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    except sqlite3.DatabaseError as error:
        conn.close()
        if is_busy(error):
            raise busy_error() from None
        raise _unusable(path, error) from None
    _install_test_hooks(conn)
    return conn


def _unusable(path: Path, error: sqlite3.DatabaseError) -> PayallocError:
    """Why a ledger file could not be opened: not a database at all, a full disk, or a file or disk problem."""
    code = getattr(error, "sqlite_errorcode", 0) & 0xFF
    if code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_FORMAT):
        return InputError(f"{path} is not a payalloc ledger ({error})")
    if is_full(error) or _no_room_beside(path):
        return disk_full(f"cannot open ledger {path}, SQLite needs room beside it for its -wal and -shm files")
    if code in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM):
        # SQLite says "unable to open database file" or "attempt to write a readonly database": say which.
        if os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK):
            return InputError(f"cannot open ledger {path}: this user may not read and write it; nothing was done")
        refused_side = _side_file_refused(path)
        if refused_side is not None:
            return InputError(f"cannot open ledger {path}: this user cannot open its SQLite file {refused_side};"
                              " nothing was done")
        directory = path.absolute().parent
        if not os.access(directory, os.W_OK | os.X_OK):
            return InputError(f"cannot open ledger {path}: SQLite makes its -wal and -shm files beside it,"
                              f" and this user may not create files in {directory}; nothing was done")
    return InputError(f"cannot open ledger {path} ({error}); nothing was done")


def _side_file_refused(path: Path) -> str | None:
    """The -wal or -shm beside the ledger that this user cannot open (another user's, mode 000, a
    directory), with why: SQLite itself only says "unable to open database file"."""
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        try:
            os.close(os.open(side, os.O_RDWR | os.O_NONBLOCK | os.O_NOCTTY))
        except FileNotFoundError:
            continue
        except OSError as error:
            return f"{side.name} ({error.strerror})"
    return None


NO_ROOM_BYTES = 1 << 20  # less free than this beside the ledger: a failure to open it is the full disk


def _no_room_beside(path: Path) -> bool:
    """Whether the ledger's directory is (all but) full: SQLite then fails to open the ledger with a
    mere "disk I/O error", as it cannot make its 32 KiB -shm file, which says nothing of the disk."""
    try:
        room = os.statvfs(path.resolve().parent)
    except OSError:
        return False
    return room.f_bavail * room.f_frsize < NO_ROOM_BYTES or (room.f_files > 0 and room.f_favail == 0)


def open_ledger(path: Path) -> sqlite3.Connection:
    """Open an existing ledger. A missing file is refused: a cron typo must not create one."""
    _refuse_without_cwd(path, "open")
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise LedgerMissing(f"ledger {path} does not exist: give the practice's ledger with --db or PAYALLOC_DB"
                             f" (payalloc --db {path} init creates a new, empty one)") from None
    except OSError as error:
        raise InputError(f"cannot open ledger {path}: {error.strerror}; nothing was done") from None
    _refuse_unless_regular(path, info.st_mode)
    conn = _connect(path, "rw")
    try:
        app_id, version = _identity(conn, path)
    except BaseException:
        conn.close()
        raise
    if app_id != APPLICATION_ID:
        conn.close()
        raise InputError(f"{path} is not a payalloc ledger")
    if version > SCHEMA_VERSION:
        conn.close()
        raise InputError(
            f"ledger {path} has schema version {version}, newer than this payalloc understands "
            f"({SCHEMA_VERSION}); upgrade payalloc"
        )
    if version < SCHEMA_VERSION:
        conn.close()
        raise InputError(f"ledger {path} has an older schema; upgrade it with: payalloc --db {path} init")
    return conn


def _refuse_without_cwd(path: Path, doing: str) -> None:
    """A relative path needs the current directory, which may have been deleted under a shell or a
    cron job still in it: os.getcwd() then fails, and SQLite's URI (path.absolute()) and the lock
    files (path.resolve()) with it, as an internal error (FileNotFoundError)."""
    if path.is_absolute():
        return
    try:
        os.getcwd()
    except OSError as error:
        raise InputError(f"cannot {doing} ledger {path}: it is relative to the current directory, which cannot"
                         f" be found ({error.strerror}: deleted?); cd to a directory, or give an absolute path;"
                         " nothing was done") from None


def _refuse_unless_regular(path: Path, mode: int) -> None:
    """SQLite would open a FIFO or a device too, and fail with "disk I/O error" (or worse, write to it)."""
    if stat.S_ISDIR(mode):
        raise InputError(f"ledger {path} is a directory, not a ledger file")
    if not stat.S_ISREG(mode):
        raise InputError(f"{path} is not a regular file (a FIFO, a device or a socket), so not a payalloc"
                         " ledger; nothing was done")


def _identity(conn: sqlite3.Connection, path: Path) -> tuple[int, int]:
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as error:
        if is_busy(error):
            raise busy_error() from None
        raise _unusable(path, error) from None
    return int(app_id), int(version)


def is_busy(error: sqlite3.Error) -> bool:
    """SQLITE_BUSY / SQLITE_LOCKED: another process holds the ledger; it is not damaged."""
    return "locked" in str(error) or "busy" in str(error)


def is_full(error: BaseException) -> bool:
    """SQLITE_FULL: the disk is full, or the ledger reached max_page_count."""
    return getattr(error, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_FULL


def busy_error() -> LedgerBusy:
    return LedgerBusy(
        f"the ledger stayed locked by another process for {busy_timeout_ms() / 1000:g} s; "
        "nothing was changed, try again"
    )


def init_ledger(path: Path) -> tuple[bool, list[str]]:
    """Create the ledger (mode 0600) or upgrade its schema. Returns (created, migrations applied)."""
    _refuse_without_cwd(path, "create")
    with files.looking(f"create ledger {path}"):
        if path.is_dir():
            raise InputError(f"ledger {path} is a directory, not a ledger file")
        if files.parent_missing(path):
            raise InputError(f"cannot create ledger {path}: directory {path.parent} does not exist")
    busy_timeout_ms()  # a usage error refuses before the file is created
    created = False
    try:
        # Created 0600 before SQLite sees it: the ledger holds health data; -wal/-shm inherit the mode.
        os.close(files.create_new(path, f"create ledger {path}"))
        created = True
    except FileExistsError:
        try:
            info = path.stat()
            _refuse_unless_regular(path, info.st_mode)  # before the chmod: /dev/null must stay 0666
            if info.st_size == 0:  # e.g. after `touch`: adopt it, owner-only like a new one
                os.chmod(path, 0o600)
        except OSError as error:  # a symbolic link to nowhere, an empty file of another user's
            raise InputError(f"cannot use {path} as the ledger: {error.strerror}; nothing was done") from None
    conn = _connect(path, "rw")
    try:
        app_id, version = _identity(conn, path)
        has_tables = conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0] > 0
        if has_tables and app_id != APPLICATION_ID:
            raise InputError(f"{path} is not a payalloc ledger; refusing to add tables to it")
        if version > SCHEMA_VERSION:
            raise InputError(f"ledger {path} has schema version {version}, newer than this payalloc; upgrade payalloc")
        if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
            raise InputError(f"cannot put ledger {path} in WAL mode (is it on a network file system?)")
        from payalloc.ledger import migrations

        # A migration may rebuild a table (SQLite's documented procedure): foreign keys are
        # off while it runs, and every reference is verified before the commit instead.
        conn.execute("PRAGMA foreign_keys = OFF")
        with write_txn(conn):
            applied = migrations.apply(conn)
            broken = conn.execute("PRAGMA foreign_key_check").fetchone()
            if broken is not None:
                raise InputError(f"ledger {path} has a broken reference in table {broken[0]}; "
                                 "it was not upgraded (run payalloc check)")
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID:d}")
        conn.execute("PRAGMA foreign_keys = ON")
        return created, applied
    except BaseException:
        conn.close()
        if created:
            path.unlink(missing_ok=True)
            writers.remove(str(path.resolve()))
        raise
    finally:
        with contextlib.suppress(sqlite3.ProgrammingError):
            conn.close()


@contextlib.contextmanager
def write_txn(
    conn: sqlite3.Connection, *, dry_run: bool = False, turn: bool = True
) -> Iterator[sqlite3.Connection]:
    """One write transaction: BEGIN IMMEDIATE first, COMMIT on success (ROLLBACK if dry_run).
    It waits for the ledger holding a writer's turn (ledger/writers.py), so that run-job lets
    it in between two chunks; only run-job's own transactions say turn=False."""
    with writers.waiting_turn(conn, busy_timeout_ms() / 1000) if turn else contextlib.nullcontext():
        try:
            _begin_immediate(conn)
        except sqlite3.OperationalError as error:
            if is_busy(error):
                raise busy_error() from None
            raise
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:  # SQLite may already have rolled back (e.g. disk full)
                conn.execute("ROLLBACK")
            raise
        if dry_run:
            conn.execute("ROLLBACK")
        else:
            conn.execute("COMMIT")
            global commits
            commits += 1


BEGIN_STEP_MS = 100  # how long one BEGIN IMMEDIATE may wait in SQLite before Python looks at signals


def _begin_immediate(conn: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE, waiting for the ledger up to the busy timeout, in steps of BEGIN_STEP_MS.
    SQLite's own wait sleeps in C, where a signal is not handled: a Ctrl-C or a SIGTERM (kill,
    timeout, systemd) to a command waiting 30 s for a locked ledger would wait those 30 s too."""
    total_ms = busy_timeout_ms()
    deadline = time.monotonic() + total_ms / 1000
    try:
        while True:
            step_ms = max(0, min(BEGIN_STEP_MS, int((deadline - time.monotonic()) * 1000)))
            conn.execute(f"PRAGMA busy_timeout = {step_ms:d}")
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                if not is_busy(error) or time.monotonic() >= deadline:
                    raise
    finally:
        conn.execute(f"PRAGMA busy_timeout = {total_ms:d}")


# Write transactions this process committed: whether a command that fails after its work (its output
# to a full disk) had changed the ledger, so that its sentence can say it truthfully.
commits = 0


@contextlib.contextmanager
def read_txn(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A consistent snapshot for several reads (WAL readers never block writers)."""
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")


@contextlib.contextmanager
def job_lock(path: Path) -> Iterator[None]:
    """Exclusive lock for run-job: a kernel lock (flock), released when the holder dies."""
    real = str(path.resolve())  # through a symbolic link or not, one ledger has one lock
    try:
        fd = writers.open_beside(real, JOB_LOCK_SUFFIX)
    except OSError as error:
        if no_space(error):
            raise disk_full(f"cannot create the run-job lock {real}.lock") from None
        raise InputError(f"cannot open the run-job lock {real}.lock ({error.strerror}); "
                         "nothing was done") from None
    try:
        try:
            locked = _flock_soon(fd)
        except OSError as error:  # e.g. ENOLCK: a file system without locks (some network mounts)
            raise InputError(f"cannot lock the run-job lock {real}.lock ({error.strerror}); "
                             "nothing was done") from None
        if not locked:
            raise LedgerBusy(f"another run-job is running on {path}; this one did nothing")
        yield
    finally:
        os.close(fd)


JOB_LOCK_GRACE_S = 0.25  # `jobs` probes the lock by taking it for an instant (job_running)


def _flock_soon(fd: int) -> bool:
    """The run-job lock, if it is free or only probed: a listing holds it for microseconds, a
    real run-job for the whole run. Still "at once" for an overlapping run."""
    return writers.flock_within(fd, fcntl.LOCK_EX, JOB_LOCK_GRACE_S)


def job_running(path: Path) -> bool:
    """Whether a run-job holds the lock of `path` now. True when that cannot be told (a lock file
    that cannot be opened or locked): a run recorded 'running' is then shown as the ledger has it."""
    try:
        fd = os.open(str(path.resolve()) + JOB_LOCK_SUFFIX, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return False  # every run-job creates the lock file before it records a run
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held (BlockingIOError), or a file system without locks
        return True
    finally:
        os.close(fd)  # closing releases the probe's lock at once (job_lock waits that long)
    return False


TEST_KILL_VM_STEPS = 1000  # kill-vm: SQLite VM instructions between two calls of the progress handler
TEST_KILL_VM_CACHE_PAGES = 10  # kill-vm: a page cache this small spills uncommitted pages into the WAL


def _install_test_hooks(conn: sqlite3.Connection) -> None:
    """Test-only fault injection, to prove crash and disk-full safety with real processes.

    Each mode needs PAYALLOC_TEST_HOOKS=<mode> AND its own number, so that none can fire by
    accident in production; with the variables unset this reads one variable and installs nothing.
    - kill (PAYALLOC_TEST_KILL_AT=K): SIGKILL when the Kth SQL statement starts (a statement boundary);
    - kill-vm (PAYALLOC_TEST_KILL_AT=K): SIGKILL at the Kth call of a progress handler that SQLite
      calls every TEST_KILL_VM_STEPS VM instructions of a statement: in the middle of a statement.
      It also shrinks the page cache, so that a transaction writes its uncommitted pages into the
      WAL long before its COMMIT (as a big import does with the default cache): the kill then
      leaves half a transaction in the file, which the next opener must ignore;
    - max-pages (PAYALLOC_TEST_MAX_PAGES=N): PRAGMA max_page_count = N, so that a write needing a
      page beyond the Nth fails with SQLITE_FULL ("database or disk is full"), as on a full disk.
    """
    mode = os.environ.get("PAYALLOC_TEST_HOOKS")
    if mode is None:
        return
    if mode == "max-pages":
        pages = os.environ.get("PAYALLOC_TEST_MAX_PAGES")
        if pages:
            conn.execute(f"PRAGMA max_page_count = {int(pages):d}")
        return
    kill_at = os.environ.get("PAYALLOC_TEST_KILL_AT")
    if not kill_at or mode not in ("kill", "kill-vm"):
        return
    remaining = [int(kill_at)]

    def count(_statement: str | None = None) -> int:
        remaining[0] -= 1
        if remaining[0] == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        return 0  # a progress handler that returns non-zero interrupts the statement

    if mode == "kill":
        conn.set_trace_callback(count)
    else:
        conn.execute(f"PRAGMA cache_size = {TEST_KILL_VM_CACHE_PAGES:d}")
        conn.set_progress_handler(count, TEST_KILL_VM_STEPS)
