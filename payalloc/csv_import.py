"""CSV import files -> validated rows and located problems. No SQL.

Streams: rows are read one at a time and handed out in batches, so memory does not grow
with the file. Refuses what is not UTF-8 CSV text with one clear sentence.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, NamedTuple

from payalloc.dates import DateError, parse_date
from payalloc.errors import InputError, Problem
from payalloc.ids import MAX_ID_LENGTH
from payalloc.money import MoneyError, parse_cents

KINDS = ("clients", "events", "charges", "payments")
MAX_TEXT_LENGTH = 4000
BATCH_ROWS = 2000


class ClientRow(NamedTuple):
    client_key: str
    name: str
    responsible_party: str | None


class EventRow(NamedTuple):
    event_key: str
    client_key: str
    scheduled_date: str
    status: str


class ChargeRow(NamedTuple):
    charge_key: str
    client_key: str
    service_date: str
    amount_cents: int
    payer: str
    service_code: str | None
    description: str | None
    event_key: str | None


class PaymentRow(NamedTuple):
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

PAYERS = frozenset({"self_pay", "patient_resp", "insurance"})
APPLY_TO = frozenset({"oldest", "specific", "event"})
METHODS = frozenset({"cash", "check", "card", "eft", "other"})
EVENT_STATUSES = frozenset({"scheduled", "done"})
PAYMENT_STATUSES = frozenset({"ready", "pending"})


class _Cell(Exception):
    """A problem with one cell: (column, reason)."""

    def __init__(self, column: str, reason: str) -> None:
        super().__init__(reason)
        self.column = column
        self.reason = reason


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

    def key(self, column: str, *, required: bool = True) -> str:
        value = self.text(column, required=required, limit=MAX_ID_LENGTH)
        if value is None:
            return ""
        if not value.isprintable():
            self.problems.append((column, "contains control or invisible characters"))
        return value

    def choice(self, column: str, allowed: frozenset[str], default: str | None = None) -> str:
        value = self.text(column, required=default is None)
        if value is None:
            return default or ""
        if value not in allowed:
            self.problems.append((column, f"'{value[:40]}' is not one of {', '.join(sorted(allowed))}"))
        return value

    def money(self, column: str) -> int:
        value = self.text(column, required=True, limit=40)
        if value is None:
            return 0
        try:  # the cell as it is: money.py decides which padding it trims (not a no-break space)
            return parse_cents(self.cells[self.index[column]])
        except MoneyError as error:
            self.problems.append((column, str(error)))
            return 0

    def date(self, column: str) -> str:
        value = self.text(column, required=True, limit=40)
        if value is None:
            return ""
        try:
            return parse_date(self.cells[self.index[column]])
        except DateError as error:
            self.problems.append((column, str(error)))
            return ""


def _client(r: _Row) -> ClientRow:
    return ClientRow(r.key("client_id"), r.text("name", required=True, limit=200) or "",
                     r.text("responsible_party", limit=200))


def _event(r: _Row) -> EventRow:
    return EventRow(r.key("event_id"), r.key("client_id"), r.date("scheduled_date"),
                    r.choice("status", EVENT_STATUSES, "scheduled"))


def _charge(r: _Row) -> ChargeRow:
    return ChargeRow(
        r.key("charge_id"), r.key("client_id"), r.date("service_date"), r.money("amount"),
        r.choice("payer", PAYERS), r.text("service_code", limit=64), r.text("description"),
        r.key("event_id", required=False) or None,
    )


def _payment(r: _Row) -> PaymentRow:
    row = PaymentRow(
        r.key("payment_id"), r.key("client_id"), r.date("received_date"), r.money("amount"),
        r.choice("apply_to", APPLY_TO), r.key("event_id", required=False) or None,
        r.text("method") and r.choice("method", METHODS), r.text("reference", limit=200),
        r.choice("status", PAYMENT_STATUSES, "ready"), r.text("note"), r.text("payer_name", limit=200),
    )
    if row.apply_to == "event" and row.event_key is None:
        r.problems.append(("event_id", "is required when apply_to is event"))
    elif row.apply_to in ("oldest", "specific") and row.event_key is not None:
        r.problems.append(("event_id", f"must be empty when apply_to is {row.apply_to}"))
    return row


PARSERS: dict[str, Callable[[_Row], Any]] = {
    "clients": _client, "events": _event, "charges": _charge, "payments": _payment,
}

# --- Fast path --------------------------------------------------------------------------
# Most rows are valid: check them with a few string operations and two caches (a file has
# few distinct dates and amounts). Anything unusual goes to the slow path above, which
# says exactly what is wrong. Both accept exactly the same rows.

_CACHE_LIMIT = 100_000
_dates: dict[str, str] = {}
_cents: dict[str, int] = {}


class _Slow(Exception):
    """This row needs the slow path."""


def _parse_and_cache(cache: dict[str, Any], parse: Callable[[str], Any], text: str) -> Any:
    """A cache miss: parse, remember (bounded), or send the row to the slow path."""
    try:
        value = parse(text)
    except InputError:
        raise _Slow from None
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[text] = value
    return value


def _date_fast(text: str) -> str:
    value = _dates.get(text)
    return value if value is not None else str(_parse_and_cache(_dates, parse_date, text))


def _money_fast(text: str) -> int:
    value = _cents.get(text)
    return value if value is not None else int(_parse_and_cache(_cents, parse_cents, text))


def _key_fast(text: str) -> str:
    value = text.strip()
    if not value or len(value) > MAX_ID_LENGTH or not value.isprintable():
        raise _Slow
    return value


def _opt(cells: list[str], i: int | None, limit: int = MAX_TEXT_LENGTH) -> str | None:
    if i is None:
        return None
    value = cells[i].strip()
    if len(value) > limit:
        raise _Slow
    return value or None


def _opt_key(cells: list[str], i: int | None) -> str | None:
    if i is None:
        return None
    value = cells[i].strip()
    if not value:
        return None
    if len(value) > MAX_ID_LENGTH or not value.isprintable():
        raise _Slow
    return value


def _fast_parser(kind: str, index: dict[str, int]) -> Callable[[list[str]], Any]:
    g = index.get
    if kind == "clients":
        ik, iname, iresp = index["client_id"], index["name"], g("responsible_party")

        def clients(c: list[str]) -> ClientRow:
            name = c[iname].strip()
            if not name or len(name) > 200:
                raise _Slow
            return ClientRow(_key_fast(c[ik]), name, _opt(c, iresp, 200))

        return clients
    if kind == "events":
        ik, icl, idate, ist = index["event_id"], index["client_id"], index["scheduled_date"], g("status")

        def events(c: list[str]) -> EventRow:
            status = c[ist].strip() if ist is not None else ""
            if status not in EVENT_STATUSES:
                if status:
                    raise _Slow
                status = "scheduled"
            return EventRow(_key_fast(c[ik]), _key_fast(c[icl]), _date_fast(c[idate]), status)

        return events
    if kind == "charges":
        ik, icl, idate, iamt, ipay = (index[n] for n in LAYOUTS["charges"].required)
        icode, idesc, iev = g("service_code"), g("description"), g("event_id")

        def charges(c: list[str]) -> ChargeRow:
            payer = c[ipay].strip()
            if payer not in PAYERS:
                raise _Slow
            return ChargeRow(_key_fast(c[ik]), _key_fast(c[icl]), _date_fast(c[idate]), _money_fast(c[iamt]),
                             payer, _opt(c, icode, 64), _opt(c, idesc), _opt_key(c, iev))

        return charges
    ik, icl, idate, iamt, iapp = (index[n] for n in LAYOUTS["payments"].required)
    iev, imeth, iref, ist, inote, ipn = (g(n) for n in LAYOUTS["payments"].optional)

    def payments(c: list[str]) -> PaymentRow:
        apply_to = c[iapp].strip()
        event = _opt_key(c, iev)
        if apply_to not in APPLY_TO or (apply_to == "event") != (event is not None):
            raise _Slow
        method = _opt(c, imeth)
        status = (_opt(c, ist) or "ready")
        if (method is not None and method not in METHODS) or status not in PAYMENT_STATUSES:
            raise _Slow
        return PaymentRow(_key_fast(c[ik]), _key_fast(c[icl]), _date_fast(c[idate]), _money_fast(c[iamt]),
                          apply_to, event, method, _opt(c, iref, 200), status, _opt(c, inote),
                          _opt(c, ipn, 200))

    return payments


class _Bytes(io.RawIOBase):
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
class Batch:
    """Parsed rows of one batch, with their starting line numbers, and the batch's problems."""

    rows: list[tuple[int, Any]]
    problems: list[Problem]


class CsvFile:
    """One import file: header checked on open, then batches of parsed rows."""

    def __init__(self, raw: IO[bytes], name: str, kind: str) -> None:
        if kind not in LAYOUTS:
            raise InputError(f"unknown import kind '{kind}'; choose one of {', '.join(KINDS)}")
        self.name = name
        self.kind = kind
        self.layout = LAYOUTS[kind]
        self.bytes = _Bytes(raw, name)
        text = io.TextIOWrapper(io.BufferedReader(self.bytes, 1 << 16), encoding="utf-8-sig", newline="")
        self.reader = csv.reader(text, strict=True)
        self.warnings: list[str] = []
        self.index = self._header()
        self.parse = PARSERS[kind]
        self.fast = _fast_parser(kind, self.index)

    def _next(self, start: int = 1) -> list[str] | None:
        try:
            return next(self.reader)
        except StopIteration:
            return None
        except UnicodeDecodeError:
            raise InputError(
                f"{self.name}: line {self.reader.line_num + 1} is not UTF-8 text "
                "(saved as Windows-1252 or Latin-1?); save the file as UTF-8 CSV"
            ) from None
        except csv.Error as error:
            if self.reader.line_num > start and "end of data" in str(error):
                raise InputError(f"{self.name}: line {start}: a quoted field that starts here is never closed "
                                 f"(malformed CSV: {error})") from None
            raise InputError(f"{self.name}: line {self.reader.line_num}: malformed CSV ({error})") from None

    def _header(self) -> dict[str, int]:
        header = self._next()
        if header is None:
            raise InputError(f"{self.name} is empty: expected a header row ({', '.join(self.layout.columns)})")
        names = [h.strip().lower() for h in header]
        index: dict[str, int] = {}
        for i, name in enumerate(names):
            if name in index:
                raise InputError(f"{self.name}: line 1: column {name or '(blank)'} appears twice in the header")
            index[name] = i
        missing = [c for c in self.layout.required if c not in index]
        if missing:
            raise InputError(
                f"{self.name}: line 1: missing required column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)} (a {self.kind} file has columns {', '.join(self.layout.columns)})"
            )
        unknown = [n or "(blank)" for n in names if n not in self.layout.columns]
        if unknown:
            self.warnings.append(f"{self.name}: ignoring unknown column{'s' if len(unknown) > 1 else ''} "
                                 f"{', '.join(unknown)}")
        self.width = len(header)
        return {name: i for name, i in index.items() if name in self.layout.columns}

    def batches(self, size: int = BATCH_ROWS) -> Iterator[Batch]:
        batch = Batch([], [])
        parse, fast, index, width, reader = self.parse, self.fast, self.index, self.width, self.reader
        append = batch.rows.append
        while True:
            start = reader.line_num + 1
            cells = self._next(start)
            if cells is None:
                break
            if not cells:  # an empty line
                continue
            if len(cells) == width:
                try:
                    append((start, fast(cells)))
                except _Slow:
                    pass
                else:
                    if len(batch.rows) >= size:
                        yield batch
                        batch = Batch([], [])
                        append = batch.rows.append
                    continue
            if len(cells) != width:
                batch.problems.append(Problem(
                    f"{self.name}: line {start}", f"has {len(cells)} fields but the header has {width}"))
            else:
                row = _Row(cells, index)
                record = parse(row)
                if row.problems:
                    batch.problems.extend(
                        Problem(f"{self.name}: line {start}, column {column}", reason)
                        for column, reason in row.problems
                    )
                else:
                    batch.rows.append((start, record))
            if len(batch.rows) + len(batch.problems) >= size:
                yield batch
                batch = Batch([], [])
                append = batch.rows.append
        if batch.rows or batch.problems:
            yield batch
