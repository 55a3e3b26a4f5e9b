"""A consistent copy of a live ledger through SQLite's backup API, owner-only (0600).

The copy is written to a private temporary file beside the destination and moved into place
only when complete, so a crash never leaves a half-written backup under the destination name;
what a kill -9 leaves under the temporary name, the next backup into that directory removes.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from payalloc.errors import no_space
from payalloc.files import place_new, remove_stale
from payalloc.ledger.connection import SQLITE_SIDE_FILES, is_full


class CopyFailed(Exception):
    """The copy could not be written (disk full, I/O error); the partial file is discarded."""

    def __init__(self, reason: str, *, full: bool) -> None:
        super().__init__(reason)
        self.full = full  # no room left for it (SQLITE_FULL, ENOSPC): exit 1, as for any full disk


def partial_path(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.{os.getpid()}.partial")


def discard_stale(directory: Path) -> None:
    """The partial copies (and their side files) of backups killed in `directory` (files.remove_stale)."""
    remove_stale(directory, tuple(".partial" + suffix for suffix in ("", *SQLITE_SIDE_FILES)))


def copy_into(conn: sqlite3.Connection, target: Path) -> int:
    """Copy the ledger open on `conn` into `target` (an empty 0600 file) in one step.

    One step reads one snapshot: in WAL mode writers go on meanwhile, and what they commit
    after the snapshot is simply not in the copy. Returns the number of pages copied.
    """
    try:
        dst = sqlite3.connect(target, isolation_level=None)
        try:
            conn.backup(dst, pages=-1)
            pages = int(dst.execute("PRAGMA page_count").fetchone()[0])
        finally:
            dst.close()
        fd = os.open(target, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except (sqlite3.Error, OSError) as error:
        raise CopyFailed(getattr(error, "strerror", None) or str(error),
                         full=is_full(error) or no_space(error)) from None
    return pages


def publish(partial: Path, dest: Path, *, replace: bool) -> None:
    """Move the finished copy to `dest`: atomically, and without clobbering unless `replace`."""
    if replace:
        os.replace(partial, dest)
    else:
        place_new(partial, dest)  # FileExistsError if dest appeared meanwhile: never clobbered
    with contextlib.suppress(OSError):
        fd = os.open(dest.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def discard(partial: Path) -> None:
    """Remove an unfinished copy and any side files SQLite made for it."""
    for suffix in ("", *SQLITE_SIDE_FILES):
        with contextlib.suppress(FileNotFoundError):
            Path(str(partial) + suffix).unlink()
