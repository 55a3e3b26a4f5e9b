"""Import a CSV export (clients, events, charges, payments) into the ledger: whole file or nothing.

Rows are validated and written batch by batch inside ONE write transaction; any problem
anywhere rolls the whole file back. Re-importing is safe: identical rows count as unchanged,
clients and events may be updated, a charge or payment with a known id and different content
is a conflict.
"""

from __future__ import annotations

import sqlite3
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import IO, Any

from payalloc.csv_import import (
    Batch,
    ChargeRecord,
    CleanBatch,
    ClientRecord,
    Columns,
    CsvFile,
    EventRecord,
    PaymentRecord,
)
from payalloc.errors import Problem, ProblemsError
from payalloc.gcpause import cyclic_gc_paused
from payalloc.ids import named, some, unknown
from payalloc.ledger import audit
from payalloc.ledger import imports as sql
from payalloc.ledger.clients import mark_for_job
from payalloc.ledger.connection import write_txn
from payalloc.money import format_cents

MAX_PROBLEMS_KEPT = 1000  # all are counted; these many are kept to show


@dataclass
class ImportSummary:
    kind: str
    file: str
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    dry_run: bool = False
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "file": self.file, "inserted": self.inserted, "updated": self.updated,
            "unchanged": self.unchanged, "dry_run": self.dry_run, "refused": False, "warnings": self.warnings,
        }


class _Problems:
    """Every problem counted; the first MAX_PROBLEMS_KEPT in file order kept to show. A batch's
    problems are found cells first, then references and conflicts: settle() puts them in line
    order (batches come in line order) before it drops those beyond the limit."""

    def __init__(self) -> None:
        self.kept: list[Problem] = []
        self.total = 0

    def add(self, problem: Problem) -> None:
        self.total += 1
        self.kept.append(problem)

    def extend(self, problems: Sequence[Problem]) -> None:
        for p in problems:
            self.add(p)

    def mark(self) -> tuple[int, int]:
        return self.total, len(self.kept)

    def undo(self, mark: tuple[int, int]) -> None:
        self.total, kept = mark
        del self.kept[kept:]

    def settle(self, mark: tuple[int, int]) -> None:
        """Sort the problems added since `mark` by line, and keep no more than the limit."""
        kept = mark[1]
        self.kept[kept:] = sorted(self.kept[kept:], key=attrgetter("line"))[:max(0, MAX_PROBLEMS_KEPT - kept)]


class _Importer:
    """Per kind: resolve references, compare with the ledger, insert or update."""

    kind = ""
    key_column = ""

    def __init__(self, conn: sqlite3.Connection, name: str, summary: ImportSummary, problems: _Problems,
                 given: frozenset[str]) -> None:
        self.conn, self.name, self.summary, self.problems = conn, name, summary, problems
        # The columns the file has: one it lacks says nothing of a row the ledger has (a clients
        # file without responsible_party keeps them; a payments file without status reconciles none).
        self.given = given
        self.start_max = sql.max_id(conn, self.kind)
        # An empty table cannot hold rows from before: skip the lookups, and let the UNIQUE
        # index catch an id repeated in the file (then that batch is redone with lookups).
        self.lookup = self.start_max > 0
        # The line on which this file named a row from before (0: not yet), and the line of
        # each row it inserted (their ids follow start_max in file order): a later batch naming
        # one again is a duplicate, and says where the first one is. Four bytes a row, no keys.
        self.named_on = array("I", [0]) * (self.start_max + 1)
        self.inserted_lines = array("I")
        # References as the ledger has them: the clients named so far (there are few, and
        # consecutive rows name the same ones), and the events of this batch alone (a file names
        # each event about once: keeping them all took ~60 MB of a 100,000-client charges file).
        self.clients: dict[str, int] = {}
        self.events: dict[str, tuple[int, int, str]] = {}

    def problem(self, line: int, column: str, reason: str) -> None:
        self.problems.add(Problem(f"{self.name}: line {line}, column {column}", reason, line, column))

    def unknown_id(self, line: int, column: str, key: str) -> None:
        """An id the ledger does not have; not quoted when it reads as a name (ids.prose)."""
        self.problem(line, column, unknown(column, key))

    # -- references ---------------------------------------------------------------------
    def _load_clients(self, keys: set[str]) -> None:
        wanted = keys.difference(self.clients)  # not keys - clients.keys(): that walks all the clients
        if wanted:
            self.clients.update(sql.client_ids(self.conn, wanted))

    def _load_events(self, keys: set[str]) -> None:
        wanted = keys.difference(self.events)
        if wanted:
            self.events.update(sql.events_by_key(self.conn, wanted))

    def _load_refs(self, rows: Sequence[tuple[int, Any]]) -> None:
        if self.kind == "clients":
            return
        self._load_clients({r.client_key for _, r in rows})
        if self.kind in ("charges", "payments"):
            self._load_events({r.event_key for _, r in rows if r.event_key is not None})

    def client_id(self, line: int, client_key: str) -> int | None:
        client = self.clients.get(client_key)
        if client is None:
            self.unknown_id(line, "client_id", client_key)
        return client

    def event_of_client(self, line: int, event_key: str | None, client: int | None) -> tuple[int, str] | None:
        """(event id, status) of an event that must belong to the row's client."""
        if event_key is None:
            return None
        event = self.events.get(event_key)
        if event is None:
            self.unknown_id(line, "event_id", event_key)
            return None
        if client is not None and event[1] != client:
            self.problem(line, "event_id", f"event_id {event_key} belongs to another client")
            return None
        return event[0], event[2]

    # The same for a whole column: None when a row needs resolve() to say what is wrong.
    def client_ids(self, client_keys: Sequence[str]) -> list[int] | None:
        wanted = set(client_keys)
        self._load_clients(wanted)
        if not self.clients.keys() >= wanted:
            return None
        return list(map(self.clients.__getitem__, client_keys))

    def event_ids(self, event_keys: Sequence[str | None], clients: list[int]) -> list[int | None] | None:
        """Each row's event id (None where it names none); each event must be its row's client's."""
        wanted = set(filter(None, event_keys))
        self._load_events(wanted)
        if not self.events.keys() >= wanted:
            return None
        owners: dict[str | None, int] = {key: self.events[key][1] for key in wanted}
        if list(map(owners.get, event_keys, clients)) != clients:  # (a row without an event: its own client)
            return None
        ids: dict[str | None, int] = {key: self.events[key][0] for key in wanted}
        return list(map(ids.get, event_keys))

    # -- per kind -------------------------------------------------------------------------
    def resolve(self, line: int, row: Any) -> tuple[Any, ...] | None:
        """The row as it is inserted, with ids for references; None after a problem."""
        raise NotImplementedError

    def resolve_columns(self, columns: Columns) -> list[tuple[Any, ...]] | None:
        """resolve() of a clean batch, as a whole; None if a row needs resolve() (nothing noted)."""
        raise NotImplementedError

    def compare(self, line: int, row: Any, values: tuple[Any, ...], old: tuple[Any, ...]) -> None:
        """A row whose id the ledger has: count it unchanged or updated, or report the conflict."""
        raise NotImplementedError

    def accept_new(self, line: int, row: Any) -> bool:
        """Last check of a row that is new to the ledger."""
        return True

    def job_clients(self, new: Sequence[tuple[Any, ...]]) -> Iterable[int]:
        """Clients to whom the inserted rows may give job work."""
        return ()

    def finish(self) -> None:
        """Apply the updates collected by compare()."""

    # -------------------------------------------------------------------------------------
    def load(self, batch: Batch | CleanBatch) -> None:
        """Check a batch against the ledger and insert its new rows (updates wait for finish())."""
        mark = self.problems.mark()
        if not self._insert(*self._new_rows(batch)):  # an id the file repeats: redo with lookups
            self.problems.undo(mark)
            self.load(batch)
        else:
            self.problems.settle(mark)

    def _new_rows(self, batch: Batch | CleanBatch) -> tuple[list[tuple[Any, ...]], Iterable[int]]:
        """The batch's rows that are new to the ledger, as inserted, and their lines; problems and
        updates noted."""
        self.events.clear()
        keys = batch.columns[0] if isinstance(batch, CleanBatch) else [row[0] for _, row in batch.rows]
        found = sql.existing(self.conn, self.kind, keys) if self.lookup else {}
        if isinstance(batch, CleanBatch):
            new = self._resolve_clean(batch.columns, found)
            if new is not None:
                return new, batch.lines()
            batch = batch.as_rows()
        self.problems.extend(batch.problems)
        return self._check_rows(batch.rows, found)

    def _resolve_clean(self, columns: Columns,
                       found: dict[str, tuple[Any, ...]]) -> list[tuple[Any, ...]] | None:
        """A clean batch at once, if all its rows are new (to the ledger, and to the batch: without
        lookups the UNIQUE index sees to that) and all their references resolve."""
        keys = columns[0]
        if found or (self.lookup and len(set(keys)) < len(keys)):
            return None
        return self.resolve_columns(columns)

    def _check_rows(self, rows: Sequence[tuple[int, Any]],
                    found: dict[str, tuple[Any, ...]]) -> tuple[list[tuple[Any, ...]], list[int]]:
        """Row by row, every problem located; rows the ledger has (found) compared with it."""
        self._load_refs(rows)
        seen: dict[str, int] = {}
        resolved: list[tuple[int, Any, tuple[Any, ...]]] = []
        for line, row in rows:
            key = row[0]
            if key in seen:
                self.problem(line, self.key_column,
                             f"{named(self.key_column, key)} appears twice in this file (first on line {seen[key]})")
                continue
            seen[key] = line
            values = self.resolve(line, row)
            if values is not None:
                resolved.append((line, row, values))
        new: list[tuple[Any, ...]] = []
        lines: list[int] = []
        for line, row, values in resolved:
            old = found.get(row[0])
            if old is None:
                if self.accept_new(line, row):
                    new.append(values)
                    lines.append(line)
            elif first := self._first_line(old[0]):
                self.problem(line, self.key_column,
                             f"{named(self.key_column, row[0])} appears twice in this file (first on line {first})")
            else:
                self.named_on[old[0]] = line
                self.compare(line, row, values, old)
        return new, lines

    def _first_line(self, row_id: int) -> int:
        """The line on which this file already named the ledger row `row_id` (0: it did not)."""
        if row_id > self.start_max:
            return self.inserted_lines[row_id - self.start_max - 1]
        return self.named_on[row_id]

    def _insert(self, new: list[tuple[Any, ...]], lines: Iterable[int]) -> bool:
        """Insert new rows and mark their clients for the job. An empty table cannot hold rows
        from before: no lookups, and the UNIQUE index catches an id repeated in the file; then
        nothing is inserted, lookups are on from now, and False says to redo the batch."""
        if self.lookup:
            sql.insert(self.conn, self.kind, new)
        else:
            sql.savepoint(self.conn)
            try:
                sql.insert(self.conn, self.kind, new)
            except sqlite3.IntegrityError:
                sql.rollback_to_savepoint(self.conn)
                self.lookup = True
                return False
            sql.release(self.conn)
        mark_for_job(self.conn, self.job_clients(new))
        self.inserted_lines.extend(lines)
        self.summary.inserted += len(new)
        return True

    def conflict(self, line: int, row: Any, column: str, detail: str = "") -> None:
        self.problem(
            line, column,
            f"{self.key_column} {row[0]} is already in the ledger with a different {column}{detail}; "
            f"{self.kind} cannot be changed by import",
        )


class _Clients(_Importer):
    kind, key_column = "clients", "client_id"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.updates: list[tuple[str, str | None, int]] = []

    def resolve(self, line: int, row: ClientRecord) -> tuple[Any, ...]:
        return (row.client_key, row.name, row.responsible_party)

    def resolve_columns(self, columns: Columns) -> list[tuple[Any, ...]]:
        return list(zip(*columns, strict=True))

    def compare(self, line: int, row: ClientRecord, values: tuple[Any, ...], old: tuple[Any, ...]) -> None:
        responsible = row.responsible_party if "responsible_party" in self.given else old[2]
        if (row.name, responsible) == (old[1], old[2]):
            self.summary.unchanged += 1
        else:
            self.updates.append((row.name, responsible, old[0]))
            self.summary.updated += 1

    def finish(self) -> None:
        sql.update_clients(self.conn, self.updates)


class _Events(_Importer):
    kind, key_column = "events", "event_id"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.done: list[int] = []
        self.ignored: list[str] = []  # events the ledger has further along: named in a warning

    def resolve(self, line: int, row: EventRecord) -> tuple[Any, ...] | None:
        client = self.client_id(line, row.client_key)
        return None if client is None else (row.event_key, client, row.scheduled_date, row.status)

    def resolve_columns(self, columns: Columns) -> list[tuple[Any, ...]] | None:
        event_key, client_key, scheduled_date, status = columns
        clients = self.client_ids(client_key)
        return None if clients is None else list(zip(event_key, clients, scheduled_date, status, strict=True))

    def compare(self, line: int, row: EventRecord, values: tuple[Any, ...], old: tuple[Any, ...]) -> None:
        _, client, date, status = old
        if client != values[1]:
            self.conflict(line, row, "client_id")
        elif date != row.scheduled_date:
            self.conflict(line, row, "scheduled_date", f" (ledger {date}, file {row.scheduled_date})")
        elif status == row.status or "status" not in self.given:
            self.summary.unchanged += 1
        elif status == "scheduled" and row.status == "done":
            self.done.append(old[0])
            self.summary.updated += 1
        else:  # the ledger is further along (done, or deleted by a clerk): an older export
            self.ignored.append(row.event_key)
            self.summary.unchanged += 1

    def finish(self) -> None:
        sql.mark_events_done(self.conn, self.done)
        if self.ignored:
            one = len(self.ignored) == 1
            self.summary.warnings.append(
                f"{self.name}: {some('event', self.ignored)} {'has' if one else 'have'} an older status in the file"
                f" than in the ledger; {'it was left as it is' if one else 'they were left as they are'}")


class _Charges(_Importer):
    kind, key_column = "charges", "charge_id"
    FIELDS = ("client_id", "service_date", "amount", "payer", "service_code", "description", "event_id")

    def resolve(self, line: int, row: ChargeRecord) -> tuple[Any, ...] | None:
        client = self.client_id(line, row.client_key)
        event = self.event_of_client(line, row.event_key, client)
        if client is None or (row.event_key is not None and event is None):
            return None
        return (row.charge_key, client, row.service_date, row.amount_cents, row.payer, row.service_code,
                row.description, event[0] if event else None)

    def resolve_columns(self, columns: Columns) -> list[tuple[Any, ...]] | None:
        charge_key, client_key, service_date, amount_cents, payer, service_code, description, event_key = columns
        clients = self.client_ids(client_key)
        events = None if clients is None else self.event_ids(event_key, clients)
        if clients is None or events is None:
            return None
        return list(zip(charge_key, clients, service_date, amount_cents, payer, service_code, description,
                        events, strict=True))

    def job_clients(self, new: Sequence[tuple[Any, ...]]) -> Iterable[int]:
        return (values[1] for values in new if values[4] != "insurance")

    def compare(self, line: int, row: ChargeRecord, values: tuple[Any, ...], old: tuple[Any, ...]) -> None:
        for name, new_value, old_value in zip(self.FIELDS, values[1:], old[1:], strict=True):
            if new_value != old_value and name in self.given:
                detail = ""
                if name == "amount":
                    detail = f" (ledger {format_cents(old_value)}, file {format_cents(new_value)})"
                elif name in ("service_date", "payer"):
                    detail = f" (ledger {old_value}, file {new_value})"
                self.conflict(line, row, name, detail)
                return
        self.summary.unchanged += 1


class _Payments(_Importer):
    kind, key_column = "payments", "payment_id"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.ready: list[int] = []
        self.void: list[str] = []  # known payments the ledger has voided since: the export is older

    def resolve(self, line: int, row: PaymentRecord) -> tuple[Any, ...] | None:
        client = self.client_id(line, row.client_key)
        event = self.event_of_client(line, row.event_key, client)
        if client is None or (row.event_key is not None and event is None):
            return None
        event_id = event[0] if event else None
        return (row.payment_key, client, row.received_date, row.amount_cents, row.apply_to, row.apply_to,
                event_id, row.method, row.reference, row.status, row.note, row.payer_name)

    def resolve_columns(self, columns: Columns) -> list[tuple[Any, ...]] | None:
        (payment_key, client_key, received_date, amount_cents, apply_to, event_key, method, reference, status,
         note, payer_name) = columns
        clients = self.client_ids(client_key)
        events = None if clients is None else self.event_ids(event_key, clients)
        if clients is None or events is None or self._names_a_deleted_event(event_key):
            return None
        return list(zip(payment_key, clients, received_date, amount_cents, apply_to, apply_to, events, method,
                        reference, status, note, payer_name, strict=True))

    def _names_a_deleted_event(self, event_keys: Sequence[str | None]) -> bool:
        """New payments may not name a deleted event (accept_new() says so of each)."""
        return "deleted" in {self.events[key][2] for key in set(filter(None, event_keys))}

    def accept_new(self, line: int, row: PaymentRecord) -> bool:
        event = self.events.get(row.event_key or "")
        if event is not None and event[2] == "deleted":
            self.problem(line, "event_id", f"event_id {row.event_key} is deleted")
            return False
        return True

    def job_clients(self, new: Sequence[tuple[Any, ...]]) -> Iterable[int]:
        return (values[1] for values in new if values[9] == "ready" and values[4] != "specific")

    def compare(self, line: int, row: PaymentRecord, values: tuple[Any, ...], old: tuple[Any, ...]) -> None:
        _, client, date, amount, entered_apply_to, event_id, method, reference, note, payer_name, status, apply_to = old
        # The apply-to as entered, or as it is now (a clerk's `payment mode`, rule 4 made it specific):
        # an export of either state is the same payment.
        same_apply_to = apply_to if row.apply_to == apply_to else entered_apply_to
        was = "" if apply_to == entered_apply_to else f", entered as {entered_apply_to}"
        # An event payment made specific keeps its event in the ledger; as it is now, it has none.
        same_event = None if row.apply_to == apply_to != entered_apply_to and values[6] is None else event_id
        checks = (
            ("client_id", values[1], client, ""),
            ("received_date", row.received_date, date, f" (ledger {date}, file {row.received_date})"),
            ("amount", row.amount_cents, amount, f" (ledger {format_cents(amount)}, file {format_cents(row.amount_cents)})"),
            ("apply_to", row.apply_to, same_apply_to, f" (ledger {apply_to}{was}, file {row.apply_to})"),
            ("event_id", values[6], same_event, ""),
            ("method", row.method, method, ""),
            ("reference", row.reference, reference, ""),
            ("note", row.note, note, ""),
            ("payer_name", row.payer_name, payer_name, ""),
        )
        for name, new_value, old_value, detail in checks:
            if new_value != old_value and name in self.given:
                self.conflict(line, row, name, detail)
                return
        if status == "pending" and row.status == "ready" and "status" in self.given:  # reconciled since: the bank says so
            self.ready.append(old[0])
            self.summary.updated += 1
        else:
            if status == "void" and "status" in self.given:  # a file cannot say void: it is older than the ledger
                self.void.append(row.payment_key)
            self.summary.unchanged += 1

    def finish(self) -> None:
        sql.mark_payments_ready(self.conn, self.ready)
        if self.void:
            one = len(self.void) == 1
            self.summary.warnings.append(
                f"{self.name}: {some('payment', self.void)} {'is' if one else 'are'} void in the ledger,"
                f" not in the file; {'it stays' if one else 'they stay'} void")


_IMPORTERS: dict[str, type[_Importer]] = {
    "clients": _Clients, "events": _Events, "charges": _Charges, "payments": _Payments,
}


def import_csv(
    conn: sqlite3.Connection,
    kind: str,
    raw: IO[bytes],
    name: str,
    *,
    now: str,
    staff: str,
    dry_run: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Import one file. Raises InputError (header, encoding) or ProblemsError (rows); writes nothing then."""
    csv_file = CsvFile(raw, name, kind)
    summary = ImportSummary(kind, name, dry_run=dry_run, warnings=list(csv_file.warnings))
    problems = _Problems()
    with cyclic_gc_paused(), write_txn(conn, dry_run=dry_run):
        importer = _IMPORTERS[kind](conn, name, summary, problems, frozenset(csv_file.index))
        for batch in csv_file.batches():
            importer.load(batch)
            if on_progress is not None:
                on_progress(csv_file.bytes_read)
        if problems.total:
            s = "s" if problems.total != 1 else ""
            raise ProblemsError(f"{name}: {problems.total} problem{s}; nothing was imported", problems.kept,
                                problems.total)
        if summary.inserted + summary.updated + summary.unchanged == 0:
            summary.warnings.append(f"{name}: the file has a header but no rows")
        importer.finish()
        audit.record(conn, at=now, staff=staff, action=audit.import_action(kind),
                     detail={"file": name, "inserted": summary.inserted, "updated": summary.updated,
                             "unchanged": summary.unchanged})
    return summary
