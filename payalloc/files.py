"""Finished files put in place: owner-only exports and backups never clobber a file they must not."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

from payalloc.errors import InputError, PayallocError, disk_full, no_space

# Where a file system has no hard links (FAT and exFAT sticks, some SMB shares), link() fails so.
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV}


def place_new(finished: Path, dest: Path) -> None:
    """Move `finished` to `dest`, which must not exist: FileExistsError if it does (or appears
    meanwhile). A hard link does it atomically; without hard links, `dest` is claimed first
    (O_EXCL), then replaced by the finished file."""
    try:
        os.link(finished, dest)
    except OSError as error:
        if isinstance(error, FileExistsError) or error.errno not in _NO_LINKS:
            raise
        os.close(os.open(dest, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        try:
            os.replace(finished, dest)
        except BaseException:
            dest.unlink(missing_ok=True)
            raise
        return
    finished.unlink()


def refuse_destination(dest: Path, *, replace: bool, named: str) -> None:
    """Refuse a destination an export or a backup must not write: in a directory that does not
    exist, a directory itself, an existing file unless `replace` (--force), and then never
    anything but a regular file. `named` is how the sentence names it ("backup destination x")."""
    with looking(f"write {named}"):
        _refuse_destination(dest, replace=replace, named=named)


def parent_missing(path: Path) -> bool:
    """Whether the directory `path` would go in does not exist. A symbolic link loop or a directory
    this user may not search raises OSError instead (looking() says which): exists() and is_dir()
    answer False for those too, and "does not exist" would misname them."""
    try:
        os.stat(path.parent)
    except (FileNotFoundError, NotADirectoryError):
        return True
    return False


def _refuse_destination(dest: Path, *, replace: bool, named: str) -> None:
    if parent_missing(dest):
        raise InputError(f"{named}: directory {dest.parent} does not exist")
    if dest.is_dir():
        raise InputError(f"{named} is a directory; name a file in it")
    if dest.exists() or dest.is_symlink():
        if not replace:
            raise InputError(f"{named} already exists; use --force to replace it")
        if not dest.is_file():
            raise InputError(f"{named} is not a regular file; refusing to replace it")


def refused(error: OSError, doing: str) -> PayallocError:
    """Why `doing` ("create ledger x.db") failed, in one sentence: a full disk (exit 1), or a place
    that refuses the file (permissions, chattr +i, a read-only mount: exit 3)."""
    if no_space(error):
        return disk_full(f"cannot {doing}")
    return InputError(f"cannot {doing}: {error.strerror or error}; nothing was written")


@contextlib.contextmanager
def looking(doing: str) -> Iterator[None]:
    """Checks of a path the user gave (exists, is_dir, stat): under a directory this user may not
    search they raise PermissionError, which is refused input like the failure to `doing` itself."""
    try:
        yield
    except OSError as error:
        raise refused(error, doing) from None


def create_new(path: Path, doing: str) -> int:
    """Create `path` owner-only (0600, whatever the umask: it holds health data) and return its
    descriptor. FileExistsError if it exists (each caller has its own answer); any other failure
    is `refused`."""
    try:
        return os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        raise
    except OSError as error:
        raise refused(error, doing) from None


def remove_stale(directory: Path, tails: tuple[str, ...]) -> None:
    """Remove the unfinished files (`.NAME.PID` + one of `tails`) that a payalloc killed with kill -9
    left in `directory`: each a full copy of health data, hidden, never cleaned up otherwise. Only
    when process PID is gone (or is this one: that pid was reused), and only this user's owner-only
    regular files, as payalloc makes them."""
    pattern = re.compile(rf"\..+\.(?P<pid>[0-9]{{1,10}})(?:{'|'.join(map(re.escape, tails))})")
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        found = pattern.fullmatch(name)
        if found is None or (int(found["pid"]) != os.getpid() and _alive(int(found["pid"]))):
            continue
        path = directory / name
        with contextlib.suppress(OSError):
            info = path.lstat()
            if stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid() and not info.st_mode & 0o077:
                path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # another user's process (EPERM), or no pid at all: leave it be
        return True
    return True
