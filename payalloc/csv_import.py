"""CSV import files -> validated rows and located problems. No SQL.

Streams: records are read (csv_text, which refuses what is not UTF-8 CSV text) and checked a
batch at a time, so memory does not grow with the file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from operator import is_not
from typing import IO, Any, NamedTuple, Protocol, TypeVar, cast

from payalloc import vocabulary
from payalloc.csv_text import CsvText, blank, numbered, start_lines, wrong_width
from payalloc.dates import DateError, parse_date
from payalloc.errors import InputError, Problem
from payalloc.ids import MAX_ID_LENGTH, MAX_NAME_LENGTH, MAX_TEXT_LENGTH, quoted, unquoted
from payalloc.money import MoneyError, parse_cents

KINDS = ("clients", "events", "charges", "payments")
BATCH_ROWS = 2000


class ClientRecord(NamedTuple):
    client_key: str
    name: str
    responsible_party: str | None


class EventRecord(NamedTuple):
    event_key: str
    client_key: str
    scheduled_date: str
    status: str


class ChargeRecord(NamedTuple):
    charge_key: str
    client_key: str
    service_date: str
    amount_cents: int
    payer: str
    service_code: str | None
    description: str | None
    event_key: str | None


class PaymentRecord(NamedTuple):
    payment_key: str
    client_key: str
    received_date: str
    amount_cents: int
    apply_to: str
    event_key: str | None
    method: str | None
    reference: str | None
    status: str
    note: str | None
    payer_name: str | None


@dataclass(frozen=True)
class Layout:
    """The columns of one kind of file: required first, in the spec's order."""

    required: tuple[str, ...]
    optional: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


LAYOUTS = {
    "clients": Layout(("client_id", "name"), ("responsible_party",)),
    "events": Layout(("event_id", "client_id", "scheduled_date"), ("status",)),
    "charges": Layout(
        ("charge_id", "client_id", "service_date", "amount", "payer"), ("service_code", "description", "event_id")
    ),
    "payments": Layout(
        ("payment_id", "client_id", "received_date", "amount", "apply_to"),
        ("event_id", "method", "reference", "status", "note", "payer_name"),
    ),
}

# What a cell may say: the vocabulary's words, but for statuses a file cannot set.
FILE_PAYERS = frozenset(vocabulary.PAYERS)
FILE_APPLY_TO = frozenset(vocabulary.APPLY_TO)
FILE_METHODS = frozenset(vocabulary.METHODS)
FILE_EVENT_STATUSES = frozenset({"scheduled", "done"})  # a file cannot delete an event
FILE_PAYMENT_STATUSES = frozenset({"ready", "pending"})  # nor void a payment


class _Row:
    """Typed access to one CSV record, collecting a problem per bad cell."""

    __slots__ = ("cells", "index", "problems")

    def __init__(self, cells: list[str], index: dict[str, int]) -> None:
        self.cells = cells
        self.index = index
        self.problems: list[tuple[str, str]] = []

    def text(self, column: str, *, required: bool = False, limit: int = MAX_TEXT_LENGTH) -> str | None:
        i = self.index.get(column)
        value = self.cells[i].strip() if i is not None else ""
        if not value:
            if required:
                self.problems.append((column, "is required"))
            return None
        if len(value) > limit:
            self.problems.append((column, f"is longer than {limit} characters"))
        return value

    def key(self, column: str, *, required: bool = True) -> str | None:
        value = self.text(column, required=required, limit=MAX_ID_LENGTH)
        if value is None:
            return "" if required else None
        if not value.isprintable():
            self.problems.append((column, "contains control or invisible characters"))
        return value

    def choice(self, column: str, allowed: frozenset[str], default: str | None = None) -> str:
        value = self.text(column, required=default is None)
        if value is None:
            return default or ""
        return self._one_of(column, value, allowed)

    def optional_choice(self, column: str, allowed: frozenset[str]) -> str | None:
        value = self.text(column)  # once: a cell too long is one problem, not two
        return None if value is None else self._one_of(column, value, allowed)

    def _one_of(self, column: str, value: str, allowed: frozenset[str]) -> str:
        if value not in allowed and len(value) <= MAX_TEXT_LENGTH:  # one too long is said so already
            self.problems.append((column, f"{quoted(value)} is not one of {', '.join(sorted(allowed))}"))
        return value

    def event_rule(self, apply_to: str, event_key: str | None) -> None:
        """An event payment names its event; another names none."""
        if apply_to == "event" and event_key is None:
            self.problems.append(("event_id", "is required when apply_to is event"))
        elif apply_to in ("oldest", "specific") and event_key is not None:
            self.problems.append(("event_id", f"must be empty when apply_to is {apply_to}"))

    def money(self, column: str) -> int:
        value = self.text(column, required=True, limit=40)
        if value is None:
            return 0
        try:  # the cell as it is: money.py decides which padding it trims (not a no-break space)
            return parse_cents(self.cells[self.index[column]])
        except MoneyError as error:
            self.problems.append((column, unquoted(error, self.cells[self.index[column]])))
            return 0

    def date(self, column: str) -> str:
        value = self.text(column, required=True, limit=40)
        if value is None:
            return ""
        try:
            return parse_date(self.cells[self.index[column]])
        except DateError as error:
            self.problems.append((column, unquoted(error, self.cells[self.index[column]])))
            return ""


# --- Fast path --------------------------------------------------------------------------
# Most batches are all valid: check them column by column with C-level builtins (map, set,
# max, str.join) and two caches (a file has few distinct dates and amounts), never a Python
# call per cell. Anything unusual sends the whole batch to the slow path above, which says
# exactly what is wrong; so the fast path only ever accepts, and accepts exactly what the
# slow path accepts, with the same values (tests/test_import.py checks both).

_CACHE_LIMIT = 100_000
# A column of ids in printable ASCII without spaces: none needs trimming, none is too long.
_PLAIN_IDS = re.compile(rf"[!-~]{{0,{MAX_ID_LENGTH}}}(?:\n[!-~]{{0,{MAX_ID_LENGTH}}})*")
# A column of amounts as exports write them ("293.86"): digits, a point, two decimals, no
# leading zero, at most nine whole digits (so never above MAX_CENTS). Its cents are its digits.
_PLAIN_AMOUNT = r"(?:[1-9][0-9]{0,8}|0)\.[0-9]{2}"
_PLAIN_AMOUNTS = re.compile(rf"{_PLAIN_AMOUNT}(?:\n{_PLAIN_AMOUNT})*")
_dates: dict[str, str] = {}  # cell as written -> date
_cents: dict[str, int] = {}  # cell as written -> cents

Columns = tuple[Sequence[Any], ...]  # a batch column by column, in the order of the kind's row type
_T = TypeVar("_T")


class _Slow(Exception):
    """This batch needs the slow path."""


def _cached(cache: dict[str, _T], parse: Callable[[str], _T], cells: Sequence[str]) -> list[_T]:
    """Parse a column through a bounded cache of cells as written. A column the cache knows
    costs one lookup per cell (all() tells at once: no parsed value is falsy)."""
    values = list(map(cache.get, cells))
    if all(values):
        return cast(list[_T], values)
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    try:
        for i in [i for i, value in enumerate(values) if value is None]:
            cell = cells[i]
            if cell not in cache:  # nor parsed for an earlier row of this batch
                cache[cell] = parse(cell)
            values[i] = cache[cell]
    except InputError:
        raise _Slow from None
    return cast(list[_T], values)


class _Columns:
    """A batch of records, all `width` cells wide, column by column; the methods mirror
    _Row's, but raise _Slow where _Row would note a problem, or where a cell is unusual."""

    __slots__ = ("cells", "index", "size", "width")

    def __init__(self, records: list[list[str]], index: dict[str, int], width: int) -> None:
        self.cells = list(chain.from_iterable(records))  # then a column is a slice: faster than zip(*records)
        self.index = index
        self.size = len(records)
        self.width = width

    def _cells(self, column: str) -> Sequence[str]:
        i = self.index.get(column)
        return self.cells[i::self.width] if i is not None else ("",) * self.size  # absent: empty, as in _Row

    def _stripped(self, column: str, limit: int) -> list[str]:
        values = list(map(str.strip, self._cells(column)))
        if max(map(len, values)) > limit:
            raise _Slow
        return values

    def _nulls(self, values: Sequence[str], required: bool) -> Sequence[str | None]:
        if "" not in values:
            return values
        if required:
            raise _Slow
        return [value or None for value in values]

    def text(self, column: str, *, required: bool = False,
             limit: int = MAX_TEXT_LENGTH) -> Sequence[str | None]:
        return self._nulls(self._stripped(column, limit), required)

    def key(self, column: str, *, required: bool = True) -> Sequence[str | None]:
        cells = self._cells(column)
        text = "\n".join(cells)
        # the usual column: one regex checks it all (with one line per cell: a cell may hold a "\n")
        if _PLAIN_IDS.fullmatch(text) and text.count("\n") == len(cells) - 1:
            return self._nulls(cells, required)
        values = self._stripped(column, MAX_ID_LENGTH)
        if not "".join(values).isprintable():
            raise _Slow
        return self._nulls(values, required)

    def choice(self, column: str, allowed: frozenset[str], default: str | None = None) -> Sequence[str]:
        cells = self._cells(column)
        found = set(cells)  # cells as written: one with padding goes the slow path
        if found <= allowed:
            return cells
        if default is not None and found <= allowed | {""}:
            return [cell or default for cell in cells]
        raise _Slow

    def optional_choice(self, column: str, allowed: frozenset[str]) -> Sequence[str | None]:
        return self._nulls(self.choice(column, allowed | {""}), required=False)

    def event_rule(self, apply_to: Sequence[str], event_key: Sequence[str | None]) -> None:
        if list(map("event".__eq__, apply_to)) != list(map(is_not, event_key, repeat(None))):
            raise _Slow  # an event payment without its event_id, or another with one

    def money(self, column: str) -> list[int]:
        cells = self._cells(column)
        text = "\n".join(cells)
        if _PLAIN_AMOUNTS.fullmatch(text):  # the usual column: one regex, then int() in C
            cents = list(map(int, text.replace(".", "").split("\n")))
            # one amount per cell (a cell holding a "\n" would read as two), none 0.00: else
            # parse_cents says what is wrong, row by row
            if len(cents) == len(cells) and min(cents) > 0:
                return cents
        return _cached(_cents, parse_cents, cells)

    def date(self, column: str) -> list[str]:
        return _cached(_dates, parse_date, self._cells(column))


# --- The fields of each kind: checked a row at a time (_Row) or a column at a time (_Columns) ---

class _Cells(Protocol):
    """What the field functions read through: a cell of one row (_Row) or a column (_Columns)."""

    def key(self, column: str, *, required: bool = True) -> Any: ...
    def text(self, column: str, *, required: bool = False, limit: int = MAX_TEXT_LENGTH) -> Any: ...
    def date(self, column: str) -> Any: ...
    def money(self, column: str) -> Any: ...
    def choice(self, column: str, allowed: frozenset[str], default: str | None = None) -> Any: ...
    def optional_choice(self, column: str, allowed: frozenset[str]) -> Any: ...
    def event_rule(self, apply_to: Any, event_key: Any) -> None: ...


def _client_fields(r: _Cells) -> tuple[Any, ...]:
    return (r.key("client_id"), r.text("name", required=True, limit=MAX_NAME_LENGTH),
            r.text("responsible_party", limit=MAX_NAME_LENGTH))


def _event_fields(r: _Cells) -> tuple[Any, ...]:
    return (r.key("event_id"), r.key("client_id"), r.date("scheduled_date"),
            r.choice("status", FILE_EVENT_STATUSES, "scheduled"))


def _charge_fields(r: _Cells) -> tuple[Any, ...]:
    return (
        r.key("charge_id"), r.key("client_id"), r.date("service_date"), r.money("amount"),
        r.choice("payer", FILE_PAYERS), r.text("service_code", limit=64), r.text("description"),
        r.key("event_id", required=False),
    )


def _payment_fields(r: _Cells) -> tuple[Any, ...]:
    payment_key, client_key, received_date, amount = (
        r.key("payment_id"), r.key("client_id"), r.date("received_date"), r.money("amount"))
    apply_to, event_key = r.choice("apply_to", FILE_APPLY_TO), r.key("event_id", required=False)
    fields = (
        payment_key, client_key, received_date, amount, apply_to, event_key,
        r.optional_choice("method", FILE_METHODS), r.text("reference", limit=MAX_NAME_LENGTH),
        r.choice("status", FILE_PAYMENT_STATUSES, "ready"), r.text("note"), r.text("payer_name", limit=MAX_NAME_LENGTH),
    )
    r.event_rule(apply_to, event_key)  # after the cells: a row's problems are listed in column order
    return fields


FIELDS: dict[str, Callable[[_Cells], tuple[Any, ...]]] = {
    "clients": _client_fields, "events": _event_fields, "charges": _charge_fields, "payments": _payment_fields,
}


@dataclass
class Batch:
    """Rows of one batch checked one by one: the valid ones with their starting line numbers,
    and the problems of the others."""

    rows: list[tuple[int, Any]]
    problems: list[Problem]


@dataclass
class CleanBatch:
    """A batch whose rows all passed the fast path, column by column (Columns), read from lines
    first_line to last_line."""

    row_type: Callable[..., Any]
    columns: Columns
    first_line: int
    last_line: int
    records: list[list[str]]

    def lines(self) -> Iterable[int]:
        """The line each record starts on: counted only when some record spans several lines
        (quoted line breaks), as the reader's own count of lines shows."""
        if self.last_line - self.first_line + 1 == len(self.records):
            return range(self.first_line, self.last_line + 1)
        return start_lines(self.first_line, self.records)

    def as_rows(self) -> Batch:
        return Batch(list(zip(self.lines(), map(self.row_type, *self.columns), strict=True)), [])


ROW_TYPES: dict[str, Callable[..., Any]] = {
    "clients": ClientRecord, "events": EventRecord, "charges": ChargeRecord, "payments": PaymentRecord,
}


class CsvFile:
    """One import file: header checked on open, then batches of parsed rows."""

    def __init__(self, raw: IO[bytes], name: str, kind: str) -> None:
        if kind not in LAYOUTS:
            raise InputError(f"unknown import kind '{kind}'; choose one of {', '.join(KINDS)}")
        self.name = name
        self.kind = kind
        self.layout = LAYOUTS[kind]
        self.text = CsvText(raw, name)
        header = self.text.header(self.layout.columns, self.layout.required, f"a {kind} file")
        self.warnings: list[str] = []
        if header.unknown:
            self.warnings.append(f"{name}: ignoring unknown column{'s' if len(header.unknown) > 1 else ''} "
                                 f"{', '.join(header.unknown)}")
        self.index, self.width = header.index, header.width
        self.fields = FIELDS[kind]
        self.row_type = ROW_TYPES[kind]

    @property
    def bytes_read(self) -> int:
        return self.text.bytes.done

    def batches(self, size: int = BATCH_ROWS) -> Iterator[Batch | CleanBatch]:
        """Batches of `size` rows. Records are read `size` at a time; when all pass the fast path
        they are a CleanBatch, else they are checked one by one, and a refused one also ends its
        batch once rows and problems reach `size`."""
        batch = Batch([], [])
        while True:
            start = self.text.next_line
            records = self.text.read(size - len(batch.rows))
            if not records:
                break
            clean = None if batch.rows or batch.problems else self._clean(records, start)
            if clean is not None:
                yield clean
                continue
            for line, cells in numbered(start, records):
                if blank(cells):
                    continue
                refused = self._check(line, cells, batch)
                if len(batch.rows) + (len(batch.problems) if refused else 0) >= size:
                    yield batch
                    batch = Batch([], [])
        if batch.rows or batch.problems:
            yield batch

    def _clean(self, records: list[list[str]], start: int) -> CleanBatch | None:
        """The records as a CleanBatch, if they all pass the fast path."""
        if set(map(len, records)) != {self.width}:
            return None
        try:
            columns = self.fields(_Columns(records, self.index, self.width))
        except _Slow:
            return None
        return CleanBatch(self.row_type, columns, start, self.text.next_line - 1, records)

    def _check(self, line: int, cells: list[str], batch: Batch) -> bool:
        """The slow path: one record's row, or its problems, into the batch. True if refused."""
        if (width := wrong_width(cells, self.width)) is not None:
            batch.problems.append(Problem(f"{self.name}: line {line}", width, line))
            return True
        row = _Row(cells, self.index)
        fields = self.fields(row)
        if row.problems:
            batch.problems.extend(Problem(f"{self.name}: line {line}, column {column}", reason, line, column)
                                  for column, reason in row.problems)
            return True
        batch.rows.append((line, self.row_type(*fields)))
        return False
