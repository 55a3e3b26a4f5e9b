"""payalloc/files.py: an export or backup is put in place whole, and never over a file it must not replace."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from payalloc.files import place_new


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
