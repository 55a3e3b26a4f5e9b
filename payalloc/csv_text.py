"""CSV text files, record by record, for import and `apply --file`: opened by path or `-`
(stdin), their header read as people title columns, and refused as a whole, with the line at
fault, when they are not UTF-8 CSV text. Both commands read through here, so a file gets the
same sentences from both. No knowledge of what the columns mean.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
import stat
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, chain, islice
from pathlib import Path
from typing import IO, Any

from payalloc.errors import InputError
from payalloc.ids import MAX_TEXT_LENGTH

_HEADER_GAPS = re.compile(r"[\s-]+")


def header_name(cell: str) -> str:
    """A header cell as a column name, as people title columns in a spreadsheet: " Client ID " and
    "Responsible-Party" are client_id and responsible_party."""
    return _HEADER_GAPS.sub("_", cell.strip().lower())


def source_name(file: str) -> str:
    """How messages and summaries name the file `-`, or another."""
    return "stdin" if file == "-" else file


def open_source(file: str) -> tuple[IO[bytes], str, int | None]:
    """The file's bytes, the name messages give it ("stdin" for `-`), and its size when known
    (for a progress bar). The caller closes it unless it is stdin."""
    if file == "-":
        return sys.stdin.buffer, source_name(file), None
    path = Path(file)
    try:  # is_dir() too: under a directory this user may not search, it raises PermissionError
        if path.is_dir():
            raise InputError(f"{file} is a directory, not a CSV file")
        raw = path.open("rb")
    except (FileNotFoundError, NotADirectoryError):
        # Not exists() first: it is False for a symbolic link loop too, which "does not exist" misnames.
        raise InputError(f"file {file} does not exist") from None
    except OSError as error:
        raise InputError(f"cannot read {file}: {error.strerror}") from None
    info = os.fstat(raw.fileno())
    return raw, file, info.st_size if stat.S_ISREG(info.st_mode) else None


def close_source(raw: IO[bytes]) -> None:
    if raw is not sys.stdin.buffer:
        raw.close()


def blank(cells: list[str]) -> bool:
    """An empty line, or a row of empty cells (Excel writes ",,,,"): skipped, not a row."""
    return not any(cells)


def wrong_width(cells: list[str], width: int) -> str | None:
    """Why a row cannot be read against its header: it has another number of cells."""
    return None if len(cells) == width else f"has {len(cells)} fields but the header has {width}"


def line_count(cells: list[str]) -> int:
    """Lines a record spans: one, plus the line breaks in its quoted cells (csv reads through
    universal newlines: \r\n, a lone \r and a lone \n each end a line)."""
    text = ",".join(cells)  # not "": a \r ending one cell and a \n starting the next are two lines
    return 1 + text.count("\n") + text.count("\r") - text.count("\r\n")


def start_lines(first_line: int, records: list[list[str]]) -> Iterable[int]:
    """The line each record starts on."""
    text = "".join(chain.from_iterable(records))
    if "\n" in text or "\r" in text:  # (accumulate would also give the line after the last record)
        return islice(accumulate(map(line_count, records), initial=first_line), len(records))
    return range(first_line, first_line + len(records))  # one line each: the usual batch


def numbered(first_line: int, records: list[list[str]]) -> Iterator[tuple[int, list[str]]]:
    """Each record with the line it starts on."""
    return zip(start_lines(first_line, records), records, strict=True)


class _CheckedBytes(io.RawIOBase):
    """The raw file, counted (for the progress bar) and refused at the first NUL byte:
    Python 3.11's csv module would accept NULs, and they mean a binary file. Bytes that are
    not UTF-8 are refused here too, where their line is known (the text layer decodes ahead)."""

    def __init__(self, raw: IO[bytes], name: str) -> None:
        self.raw = raw
        self.name_for_errors = name
        self.done = 0
        self.first = True
        self.lines = 0  # newlines passed on so far
        self.utf8 = codecs.getincrementaldecoder("utf-8")()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        if self.first:
            self.first = False
            if data[:4] in (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff"):
                raise InputError(f"{self.name_for_errors} is UTF-32 text; save it as UTF-8 CSV")
            if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
                raise InputError(f"{self.name_for_errors} is UTF-16 text; save it as UTF-8 CSV")
        nul = data.find(b"\x00")
        if nul >= 0:
            line = self.lines + data.count(b"\n", 0, nul) + 1
            raise InputError(f"{self.name_for_errors}: line {line} contains NUL bytes: it is not CSV text")
        try:  # ASCII is UTF-8: decode only the rest (and what an earlier chunk left pending)
            if not data.isascii() or not data or self.utf8.getstate()[0]:
                self.utf8.decode(data, final=not data)
        except UnicodeDecodeError as error:
            line = self.lines + error.object.count(b"\n", 0, error.start) + 1
            raise InputError(f"{self.name_for_errors}: line {line} is not UTF-8 text "
                             "(saved as Windows-1252 or Latin-1?); save the file as UTF-8 CSV") from None
        self.lines += data.count(b"\n")
        n = len(data)
        buffer[:n] = data
        self.done += n
        return n


@dataclass
class Header:
    """Where each known column is (a header may list them in any order), how many cells a row
    has, and the header's other columns as the file names them (ignored, with a warning)."""

    index: dict[str, int]
    width: int
    unknown: list[str] = field(default_factory=list)


class CsvText:
    """One CSV text file, read a few records at a time (memory does not grow with the file)."""

    def __init__(self, raw: IO[bytes], name: str) -> None:
        self.name = name
        self.bytes = _CheckedBytes(raw, name)
        text = io.TextIOWrapper(io.BufferedReader(self.bytes, 1 << 16), encoding="utf-8-sig", newline="")
        self.reader = csv.reader(text, strict=True)

    @property
    def next_line(self) -> int:
        """The line the next record starts on."""
        return self.reader.line_num + 1

    def read(self, n: int) -> list[list[str]]:
        """Up to n records ([] at the end of the file)."""
        start = self.next_line
        records: list[list[str]] = []
        try:  # extend, not list(): the records read before an error stay, to locate the one at fault
            records.extend(islice(self.reader, n))
        except UnicodeDecodeError:
            raise InputError(
                f"{self.name}: line {self.next_line} is not UTF-8 text "
                "(saved as Windows-1252 or Latin-1?); save the file as UTF-8 CSV"
            ) from None
        except csv.Error as error:
            start += sum(map(line_count, records))
            if "field larger than field limit" in str(error):  # csv's limit bounds memory, if a quote never closes
                raise InputError(f"{self.name}: line {start}: a cell is longer than {csv.field_size_limit():,}"
                                 f" characters (no column may hold more than {MAX_TEXT_LENGTH:,}; a quote never"
                                 " closed?)") from None
            if self.reader.line_num > start and "end of data" in str(error):
                raise InputError(f"{self.name}: line {start}: a quoted field that starts here is never closed "
                                 f"(malformed CSV: {error})") from None
            raise InputError(f"{self.name}: line {self.reader.line_num}: malformed CSV ({error})") from None
        return records

    def numbered(self, n: int = 2000) -> Iterator[tuple[int, list[str]]]:
        """Every record left, with the line it starts on, read n at a time."""
        while True:
            start = self.next_line
            records = self.read(n)
            if not records:
                return
            yield from numbered(start, records)

    def header(self, columns: Sequence[str], required: Sequence[str], described: str) -> Header:
        """Read the header row. `described` names the kind of file in messages ("a charges file")."""
        records = self.read(1)
        if not records:
            raise InputError(f"{self.name} is empty: expected a header row ({', '.join(columns)})")
        cells = records[0]
        names = [header_name(h) for h in cells]
        index: dict[str, int] = {}
        for i, name in enumerate(names):
            if name in index and name:  # blank header cells (Excel's trailing columns) are all ignored
                raise InputError(f"{self.name}: line 1: column {name} appears twice in the header")
            index.setdefault(name, i)
        missing = [c for c in required if c not in index]
        if missing:
            raise InputError(
                f"{self.name}: line 1: missing required column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)} ({described} has columns {', '.join(columns)})"
            )
        unknown = list(dict.fromkeys(h.strip() or "(blank)" for h, n in zip(cells, names, strict=True)
                                     if n not in columns))  # named as the file has them
        return Header({name: i for name, i in index.items() if name in columns}, len(cells), unknown)
