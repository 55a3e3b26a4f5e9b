"""`payalloc backup DEST`: a consistent, owner-only copy of the ledger, checked after it is made."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from payalloc.errors import DiskFull, InputError, disk_full
from payalloc.files import create_new, looking, refuse_destination, refused
from payalloc.ledger import backup as files
from payalloc.ledger.connection import companion_files, open_ledger
from payalloc.services.check import CheckReport, check_ledger


@dataclass(frozen=True)
class BackupResult:
    dest: Path
    pages: int
    report: CheckReport  # `check` run on the copy


def _refuse_bad_destination(ledger: Path, dest: Path, *, force: bool) -> None:
    if str(dest) in ("", "-"):
        raise InputError("backup needs a destination file path")
    with looking(f"write backup destination {dest}"):
        _refuse_ledger_or_bad_place(ledger, dest, force=force)


def _refuse_ledger_or_bad_place(ledger: Path, dest: Path, *, force: bool) -> None:
    if not dest.parent.is_dir() or dest.is_dir():  # before the ledger's own files are told apart
        refuse_destination(dest, replace=force, named=f"backup destination {dest}")
    # realpath, not Path.resolve(): Python 3.11's raises RuntimeError at a symbolic link loop (a -> b -> a).
    ledger_abs = Path(os.path.realpath(ledger))
    dest_abs = Path(os.path.realpath(dest))
    own_files = {ledger_abs, *companion_files(ledger_abs)}
    same = dest_abs in own_files or (dest.exists() and ledger.exists() and os.path.samefile(dest, ledger))
    if same:
        raise InputError(f"backup destination {dest} is the ledger itself (or one of its files); choose another path")
    refuse_destination(dest, replace=force, named=f"backup destination {dest}")


def backup(ledger: Path, dest: Path, *, force: bool = False) -> BackupResult:
    """Copy the ledger to `dest` (0600) through SQLite's backup API while others may write,
    then run `check` on the copy. The copy is faithful: if the ledger has violations, so has it."""
    _refuse_bad_destination(ledger, dest, force=force)
    conn = open_ledger(ledger)
    partial = files.partial_path(dest)
    files.discard_stale(dest.parent)
    try:
        os.close(create_new(partial, f"create the backup {dest}"))
    except BaseException:
        conn.close()
        raise
    try:
        try:
            pages = files.copy_into(conn, partial)
        except files.CopyFailed as failed:
            if failed.full:
                raise disk_full(f"cannot write the backup {dest}") from None
            raise InputError(f"cannot write the backup {dest}: {failed}; nothing was written") from None
        finally:
            conn.close()
        try:
            copy = open_ledger(partial)
        except DiskFull:  # written, but no room left for its -shm file: name the backup, not the partial
            raise disk_full(f"cannot check the backup {dest}") from None
        try:
            report = check_ledger(copy)
        finally:
            copy.close()
        try:
            files.publish(partial, dest, replace=force)
        except FileExistsError:
            raise InputError(f"backup destination {dest} appeared meanwhile; use --force to replace it") from None
        except OSError as error:  # e.g. chattr +i on the file that --force replaces
            raise refused(error, f"write the backup {dest}") from None
    except BaseException:
        files.discard(partial)
        raise
    files.discard(partial)  # side files only: the copy itself has moved to dest
    return BackupResult(dest, pages, report)
