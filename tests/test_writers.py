"""ledger/writers.py: run-job lets a waiting writer in before its next chunk; the turns never block
a write they cannot serve. (A clerk landing between a real run's chunks: tests/test_concurrency.py.)"""

from __future__ import annotations

import errno
import fcntl
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from payalloc.ledger import writers
from payalloc.ledger.connection import JOB_LOCK_SUFFIX, open_ledger, write_txn
from tests.builders import add_client
from tests.conftest import Cli


def test_the_job_waits_while_a_writer_holds_its_turn_and_goes_on_after(ledger_path: Path) -> None:
    clerk, job = open_ledger(ledger_path), open_ledger(ledger_path)
    passed = threading.Event()
    with writers.job_turns(job, patience_s=30) as turns:
        with writers.waiting_turn(clerk, patience_s=1):  # a clerk waiting for, or in, its transaction
            worker = threading.Thread(target=lambda: (turns.let_writers_in(), passed.set()))
            worker.start()
            assert not passed.wait(0.3), "the job went on while a writer waited for its turn"
        worker.join(5)
        assert passed.is_set(), "the job did not go on once the writer was done"
        turns.let_writers_in()  # nobody waiting: at once
    clerk.close()
    job.close()


def test_a_job_out_of_patience_goes_on(ledger_path: Path) -> None:
    clerk, job = open_ledger(ledger_path), open_ledger(ledger_path)
    with writers.job_turns(job, patience_s=0.05) as turns, writers.waiting_turn(clerk, patience_s=1):
        started = time.monotonic()
        worker = threading.Thread(target=turns.let_writers_in)
        worker.start()
        worker.join(5)  # returns after its patience, the writer still holding its turn
        assert not worker.is_alive(), "the job waited for the writer beyond its patience"
        assert time.monotonic() - started >= 0.05, "the job did not wait for the writer at all"
    clerk.close()
    job.close()


def test_writes_go_on_when_the_lock_file_cannot_be_opened(ledger_path: Path, conn: sqlite3.Connection) -> None:
    lock = ledger_path.parent / (ledger_path.name + writers.SUFFIX)
    lock.unlink(missing_ok=True)
    lock.mkdir()  # cannot be opened: as good as a file of another user's
    add_client(conn, "C1")  # through write_txn
    with writers.job_turns(conn, patience_s=1) as turns:
        turns.let_writers_in()
        with write_txn(conn, turn=False):
            conn.execute("UPDATE clients SET name = 'x' WHERE client_key = 'C1'")
    assert conn.execute("SELECT name FROM clients").fetchone() == ("x",)


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
@pytest.mark.parametrize("suffix", [writers.SUFFIX, JOB_LOCK_SUFFIX])
def test_a_lock_file_planted_as_a_link_is_never_followed(
    ledger_path: Path, conn: sqlite3.Connection, tmp_path: Path, link: str, suffix: str
) -> None:
    """Whoever may write the ledger's directory could plant `<ledger>.lock` or `.writers` as a link
    to another file: a root cron job opening it would create or chown that file. Refused instead
    (the writers' turns are then skipped; run-job stops, naming the lock), the target untouched."""
    target = tmp_path / "secret"
    target.write_text("root-only\n")
    target.chmod(0o600)
    lock = Path(str(ledger_path) + suffix)
    lock.unlink(missing_ok=True)
    if link == "symlink":
        lock.symlink_to(target)
    else:
        os.link(target, lock)
    before = (target.read_text(), os.stat(target).st_mode, os.stat(target).st_uid, os.stat(target).st_nlink)
    with pytest.raises(OSError, match=r"symbolic link|not a regular file of its own"):
        writers.open_beside(str(ledger_path), suffix)
    if suffix == writers.SUFFIX:
        add_client(conn, "C1")  # a write goes on, without the turns
    else:
        result = Cli(ledger_path)("run-job")
        assert result.exit_code == 3 and "cannot open the run-job lock" in result.stderr, result.stderr
    after = (target.read_text(), os.stat(target).st_mode, os.stat(target).st_uid, os.stat(target).st_nlink)
    assert after == before


def test_writes_go_on_where_the_file_system_has_no_locks(
    ledger_path: Path, conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    add_client(conn, "C1")  # through write_txn: a clerk's write
    with writers.job_turns(conn, patience_s=1) as turns:
        turns.let_writers_in()  # the job's side goes on too
    assert conn.execute("SELECT client_key FROM clients").fetchall() == [("C1",)]


def test_a_ledger_opened_through_a_symbolic_link_has_the_same_turns(ledger_path: Path, tmp_path: Path) -> None:
    link = tmp_path / "elsewhere" / "current.db"
    link.parent.mkdir()
    link.symlink_to(ledger_path)
    through_link, direct = open_ledger(link), open_ledger(ledger_path)
    passed = threading.Event()
    with writers.job_turns(through_link, patience_s=30) as turns:
        with writers.waiting_turn(direct, patience_s=1):
            worker = threading.Thread(target=lambda: (turns.let_writers_in(), passed.set()))
            worker.start()
            assert not passed.wait(0.3), "the job, through the link, did not see the writer"
        worker.join(5)
    assert passed.is_set()
    assert not (link.parent / ("current.db" + writers.SUFFIX)).exists()
    through_link.close()
    direct.close()
