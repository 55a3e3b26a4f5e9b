"""Turns between run-job and the other writers: a clerk's `apply` goes in between two chunks.

SQLite alone would often make it wait for the whole run: the job begins its next chunk
microseconds after committing one, while a writer waiting for the lock only retries every few
to 100 ms, so it seldom finds the ledger free (measured: a one-row import started with a 1.1 s
run finished after it, 3 times out of 3). So every writer but the job holds a shared kernel lock
(flock) on `<ledger>.writers` while its transaction waits and runs, and the job, before each
chunk, lets such writers finish first. The kernel releases the lock of a process that dies.

The turns are a courtesy, never a condition: where the lock file cannot be opened (a directory
the user may not write to, a file another user created) writers and the job go on without it,
as SQLite's own locking keeps them correct. Both sides name the file after the path SQLite
opened (symbolic links resolved), so that they always meet on the same file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sqlite3
import stat
import time
from collections.abc import Iterator

SUFFIX = ".writers"
POLL_S = 0.002


def ledger_file(conn: sqlite3.Connection) -> str:
    """The file SQLite opened for `conn` ("" for an in-memory or temporary database). Read as bytes
    and decoded as Python decodes file names: a name that is not UTF-8 (b"caf\\xe9.db", from a Latin-1
    system) failed to decode as text, and every write to that ledger was an internal error."""
    raw = conn.execute("SELECT CAST(file AS BLOB) FROM pragma_database_list WHERE name = 'main'").fetchone()[0]
    return os.fsdecode(raw or b"")


def open_beside(ledger: str, suffix: str) -> int:
    """A lock file beside the ledger (`<ledger><suffix>`), owner-only; OSError if it cannot be had.
    Never through a link: whoever may write the ledger's directory could plant one there, and a
    root cron job would then create, or give the ledger's owner, a file anywhere (/etc/shadow)."""
    try:
        fd = os.open(ledger + suffix, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "it is a symbolic link; payalloc does not follow one for a lock file") from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        raise OSError(errno.EPERM, "it is not a regular file of its own (a hard link, a device or a FIFO)")
    if os.geteuid() == 0:  # root (a cron job) must not leave a file the ledger's owner cannot open
        with contextlib.suppress(OSError):
            owner = os.stat(ledger)
            os.fchown(fd, owner.st_uid, owner.st_gid)
    return fd


def _open(ledger: str) -> int | None:
    """The writers' lock file; None when it cannot be opened (the turns are then skipped)."""
    try:
        return open_beside(ledger, SUFFIX)
    except OSError:
        return None


def remove(ledger: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(ledger + SUFFIX)


def flock_within(fd: int, operation: int, patience_s: float) -> bool:
    """Take the flock, trying until patience_s has passed; False if another holds it still.
    OSError (a file system without locks, e.g. ENOLCK on some network mounts) is the caller's."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_S)


def _wait(fd: int, operation: int, patience_s: float) -> bool:
    """flock_within, where a lock that cannot be had at all counts as not had: writers' turns
    are a courtesy, never a reason to refuse a write."""
    try:
        return flock_within(fd, operation, patience_s)
    except OSError:
        return False


@contextlib.contextmanager
def waiting_turn(conn: sqlite3.Connection, patience_s: float) -> Iterator[None]:
    """Hold a writer's place for one transaction of `conn`. The shared lock is refused only while
    the job looks for writers (microseconds); past patience_s the writer goes on without it."""
    ledger = ledger_file(conn)
    fd = _open(ledger) if ledger else None
    if fd is None:
        yield
        return
    try:
        _wait(fd, fcntl.LOCK_SH, patience_s)
        yield
    finally:
        os.close(fd)


class JobTurns:
    """The job's side: before each chunk, `let_writers_in()`."""

    def __init__(self, conn: sqlite3.Connection, patience_s: float) -> None:
        ledger = ledger_file(conn)
        self.fd = _open(ledger) if ledger else None
        self.patience_s = patience_s

    def let_writers_in(self) -> None:
        """Wait while another writer waits for the ledger or writes to it, at most patience_s
        (then the chunk goes on and waits for SQLite's lock, as any writer does)."""
        if self.fd is not None and _wait(self.fd, fcntl.LOCK_EX, self.patience_s):
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)


@contextlib.contextmanager
def job_turns(conn: sqlite3.Connection, patience_s: float) -> Iterator[JobTurns]:
    turns = JobTurns(conn, patience_s)
    try:
        yield turns
    finally:
        turns.close()
