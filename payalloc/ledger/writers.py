"""Turns between run-job and the other writers: a clerk's `apply` goes in between two chunks.

SQLite alone would make it wait for the whole run: the job begins its next chunk microseconds
after committing one, while a writer waiting for the lock only retries every few to 100 ms, so
it almost never finds the ledger free (measured: a one-row import started with a 1.1 s run
finished after it, 3 times out of 3). So every writer but the job holds a shared kernel lock
(flock) on `<ledger>.writers` while its transaction waits and runs, and the job, before each
chunk, lets such writers finish first. The kernel releases the lock of a process that dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

SUFFIX = ".writers"
POLL_S = 0.002


def _open(ledger: str | Path) -> int:
    return os.open(f"{ledger}{SUFFIX}", os.O_CREAT | os.O_RDWR, 0o600)  # beside the ledger, owner-only


@contextlib.contextmanager
def waiting_turn(conn: sqlite3.Connection) -> Iterator[None]:
    """Hold a writer's place for one transaction of `conn` (nothing for an in-memory ledger)."""
    ledger = conn.execute("PRAGMA database_list").fetchone()[2]
    if not ledger:
        yield
        return
    fd = _open(ledger)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # waits only while the job checks for writers, microseconds
        yield
    finally:
        os.close(fd)


class JobTurns:
    """The job's side: before each chunk, `let_writers_in()`."""

    def __init__(self, ledger: Path, patience_s: float) -> None:
        self.fd = _open(ledger)
        self.patience_s = patience_s

    def let_writers_in(self) -> None:
        """Wait while another writer waits for the ledger or writes to it, at most patience_s
        (then the chunk goes on and waits for SQLite's lock, as any writer does)."""
        deadline = time.monotonic() + self.patience_s
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return
                time.sleep(POLL_S)
            else:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
                return

    def close(self) -> None:
        os.close(self.fd)


@contextlib.contextmanager
def job_turns(ledger: Path, patience_s: float) -> Iterator[JobTurns]:
    turns = JobTurns(ledger, patience_s)
    try:
        yield turns
    finally:
        turns.close()
