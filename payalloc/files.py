"""Finished files put in place: owner-only exports and backups never clobber a file they must not."""

from __future__ import annotations

import errno
import os
from pathlib import Path

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
