"""Events (appointments) and rule 4's lifecycle: done, deleted.

`event done` only changes the event: the trigger marks the client, and the next run-job applies
the attached payments to the event's charges and makes what is left `specific` (as the
practice-management system does). `event delete` makes the attached payments `specific` at once,
in the same transaction, once the clerk has confirmed.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from payalloc.allocation import Conversion
from payalloc.dates import parse_date
from payalloc.errors import InputError
from payalloc.ids import parse_id, parsed
from payalloc.ledger import audit
from payalloc.ledger import events as sql
from payalloc.ledger.clients import known_client
from payalloc.ledger.connection import read_txn, write_txn
from payalloc.ledger.listings import Listing
from payalloc.ledger.payments import convert_to_specific
from payalloc.money import format_cents
from payalloc.vocabulary import EVENT_STATUSES


@dataclass(frozen=True)
class EventChange:
    event_key: str
    client_key: str
    previous_status: str
    status: str
    changed: bool
    attached: list[sql.AttachedPayment] = field(default_factory=list)  # payments attached at the time
    converted: list[str] = field(default_factory=list)  # payments made specific
    open_balance_cents: int = 0  # what the event's self-pay charges still owe (event done)


def _event(conn: sqlite3.Connection, event_key: str) -> sql.EventRow:
    return sql.known_event(conn, parse_id(event_key, "event_id"))


def add_event(
    conn: sqlite3.Connection,
    *,
    client_key: str,
    date: str,
    event_key: str | None = None,
    now: str,
    staff: str,
) -> str:
    """Schedule an event for a client; returns its id (generated as EV-000123 when not given)."""
    client = parse_id(client_key, "client_id")
    scheduled = parsed(parse_date, date)
    key = None if event_key is None else parse_id(event_key, "event_id")
    with write_txn(conn):
        cid = known_client(conn, client).id
        if key is None:
            n = sql.next_id(conn)
            while sql.key_exists(conn, f"EV-{n:06d}"):
                n += 1
            key = f"EV-{n:06d}"
        elif sql.key_exists(conn, key):
            raise InputError(f"event {key} already exists")
        sql.insert(conn, key, cid, scheduled)
        audit.record(conn, at=now, staff=staff, action=audit.EVENT_ADD, client_key=client, event_key=key,
                     detail={"scheduled_date": scheduled})
    return key


@contextlib.contextmanager
def list_events(
    conn: sqlite3.Connection, *, client_key: str | None = None, status: str | None = None
) -> Iterator[Listing]:
    """The events, streamed from one snapshot inside the block."""
    if status is not None and status not in EVENT_STATUSES:
        raise InputError(f"status '{status}' is not one of {', '.join(EVENT_STATUSES)}")
    with read_txn(conn):
        cid = None
        if client_key is not None:
            cid = known_client(conn, parse_id(client_key, "client_id")).id
        yield sql.listing(conn, cid, status)


def attached_payments(conn: sqlite3.Connection, event_key: str) -> list[sql.AttachedPayment]:
    """Payments still attached to the event (apply-to event, not void, money unapplied)."""
    with read_txn(conn):
        return sql.attached_payments(conn, _event(conn, event_key).id)


def mark_done(conn: sqlite3.Connection, event_key: str, *, now: str, staff: str) -> EventChange:
    with write_txn(conn):
        event = _event(conn, event_key)
        attached = sql.attached_payments(conn, event.id)
        if event.status == "done":
            return EventChange(event.event_key, event.client_key, "done", "done", False, attached,
                               open_balance_cents=sql.open_balance_cents(conn, event.id))
        if event.status == "deleted":
            raise InputError(f"event {event.event_key} is deleted; a deleted event cannot be done")
        sql.set_status(conn, event.id, "done")
        audit.record(conn, at=now, staff=staff, action=audit.EVENT_DONE, client_key=event.client_key,
                     event_key=event.event_key, detail={"from": event.status, "to": "done"})
        balance = sql.open_balance_cents(conn, event.id)
    return EventChange(event.event_key, event.client_key, event.status, "done", True, attached,
                       open_balance_cents=balance)


def delete_event(
    conn: sqlite3.Connection, event_key: str, *, now: str, staff: str, confirmed: bool,
    shown: Sequence[str] | None = None,
) -> EventChange:
    """Mark the event deleted; attached payments become specific. With payments attached this
    needs `confirmed` (the clerk saw the warning, or passed --yes). `shown`: the payments the
    clerk was warned of; one attached since (the prompt may wait for minutes) refuses the delete."""
    with write_txn(conn):
        event = _event(conn, event_key)
        if event.status == "deleted":
            return EventChange(event.event_key, event.client_key, "deleted", "deleted", False)
        attached = sql.attached_payments(conn, event.id)
        unseen = [p.key for p in attached if shown is not None and p.key not in shown]
        if unseen:
            raise InputError(
                f"event {event.event_key} was not deleted; nothing was changed: {_payments(len(unseen))}"
                f" ({', '.join(unseen)}) became attached to it after the warning; run the command again"
            )
        if attached and not confirmed:
            total = sum(p.unapplied_cents for p in attached)
            raise InputError(
                f"event {event.event_key} has {_payments(len(attached))} attached with {format_cents(total)}"
                f" unapplied ({', '.join(p.key for p in attached)}); nothing was changed:"
                f" confirm with --yes to delete it and make {'that payment' if len(attached) == 1 else 'them'}"
                " apply to specific charges"
            )
        sql.set_status(conn, event.id, "deleted")
        audit.record(conn, at=now, staff=staff, action=audit.EVENT_DELETE, client_key=event.client_key,
                     event_key=event.event_key, reason="event deleted",
                     detail={"from": event.status, "attached_payments": len(attached)})
        convert_to_specific(conn, [Conversion(p.id, event.client_id, event.id, "deleted", p.unapplied_cents)
                                   for p in attached], staff=staff, job_run_id=None, now=now)
    return EventChange(event.event_key, event.client_key, event.status, "deleted", True, attached,
                       [p.key for p in attached])


def _payments(n: int) -> str:
    return f"{n} payment{'s' if n != 1 else ''}"
