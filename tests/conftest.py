"""Shared fixtures: a fresh ledger file per test, a connection to it, and the CLI."""

from __future__ import annotations

import os
import re
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from typer.testing import CliRunner

from payalloc.cli import app
from payalloc.ledger.connection import init_ledger, open_ledger

settings.register_profile("ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("deep", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("PAYALLOC_TEST_PROFILE", "ci"))



def _ledgers_in_memory(shm: str = "/dev/shm", room: int = 2 << 30) -> None:
    """Tests' temporary files (tmp_path, tempfile) go to a RAM file system where there is a roomy one
    and TMPDIR does not name another place. The ledger runs with synchronous = FULL: on a disk each of
    the suite's many thousand commits waits for an fsync, which took about a fifth of its time; a kill -9
    or a full disk (max_page_count) is the same on either. Set TMPDIR to choose the place."""
    if os.environ.get("TMPDIR") or not os.path.isdir(shm) or not os.access(shm, os.W_OK | os.X_OK):
        return
    stats = os.statvfs(shm)
    if stats.f_bavail * stats.f_frsize >= room:
        os.environ["TMPDIR"] = shm  # for subprocesses, and pytest-xdist's workers
        tempfile.tempdir = shm  # gettempdir() may already have been read (pytest's capture)


_ledgers_in_memory()

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data"


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    init_ledger(path)
    return path


@pytest.fixture
def conn(ledger_path: Path) -> Iterator[sqlite3.Connection]:
    connection = open_ledger(ledger_path)
    yield connection
    connection.close()


class Cli:
    """Runs payalloc in-process against one ledger; stdout and stderr apart."""

    def __init__(self, ledger: Path) -> None:
        self.ledger = ledger
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        full_env = {"COLUMNS": "200", "PAYALLOC_STAFF": "clerk1", **(env or {})}
        return self.runner.invoke(app, ["--db", str(self.ledger), *args], input=input, env=full_env)


@pytest.fixture
def cli(ledger_path: Path) -> Cli:
    return Cli(ledger_path)


@pytest.fixture
def dump(ledger_path: Path) -> Callable[[], list[str]]:
    """The ledger's full content as SQL text: to prove that a refused command wrote nothing."""

    def _dump() -> list[str]:
        c = sqlite3.connect(ledger_path)
        try:
            return list(c.iterdump())
        finally:
            c.close()

    return _dump


def whole(value: str, text: str) -> bool:
    """VALUE appears in TEXT as a whole cell: not cut ("P-3…"), not split over two lines."""
    return re.search(rf"(?<!\S){re.escape(value)}(?!\S)", text) is not None


def fits(text: str, width: int) -> bool:
    """No line wider than the terminal (Rich would crop it) and no ellipsis (Rich cut a cell)."""
    from rich.cells import cell_len

    return "\u2026" not in text and all(cell_len(line) <= width for line in text.splitlines())
