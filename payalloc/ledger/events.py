"""SQL of events (appointments) and of the payments attached to them."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import NamedTuple

from payalloc.ids import known
from payalloc.ledger.listings import Listing, from_cursor
from payalloc.vocabulary import EVENT_STATUSES


@dataclass(frozen=True)
class EventRow:
    id: int
    event_key: str
    client_id: int
    client_key: str
    scheduled_date: str
    status: str


def find_event(conn: sqlite3.Connection, event_key: str) -> EventRow | None:
    row = conn.execute(
        "SELECT e.id, e.event_key, e.client_id, c.client_key, e.scheduled_date, e.status"
        " FROM events e JOIN clients c ON c.id = e.client_id WHERE e.event_key = ?",
        (event_key,),
    ).fetchone()
    return None if row is None else EventRow(*row)


def known_event(conn: sqlite3.Connection, event_key: str) -> EventRow:
    """The event of this id, or NotFound naming the id."""
    return known(find_event(conn, event_key), "event", event_key)


def key_exists(conn: sqlite3.Connection, event_key: str) -> bool:
    return conn.execute("SELECT 1 FROM events WHERE event_key = ?", (event_key,)).fetchone() is not None


def next_id(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(id), 0) + 1 FROM events").fetchone()[0])


def insert(conn: sqlite3.Connection, event_key: str, client_id: int, scheduled_date: str) -> int:
    cur = conn.execute(
        "INSERT INTO events (event_key, client_id, scheduled_date, status) VALUES (?, ?, ?, 'scheduled')",
        (event_key, client_id, scheduled_date),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def set_status(conn: sqlite3.Connection, event_id: int, status: str) -> None:
    assert status in EVENT_STATUSES
    conn.execute("UPDATE events SET status = ? WHERE id = ?", (status, event_id))


class AttachedPayment(NamedTuple):
    id: int
    key: str
    status: str
    amount_cents: int
    unapplied_cents: int


def attached_payments(conn: sqlite3.Connection, event_id: int) -> list[AttachedPayment]:
    """Payments still attached to the event: apply-to event, not void, money unapplied."""
    return [
        AttachedPayment(pid, key, status, amount, amount - applied)
        for pid, key, status, amount, applied in conn.execute(
            "SELECT id, payment_key, status, amount_cents, applied_cents FROM payments"
            " WHERE event_id = ? AND apply_to = 'event' AND status <> 'void' AND applied_cents < amount_cents"
            " ORDER BY received_date, id",
            (event_id,),
        )
    ]


def open_balance_cents(conn: sqlite3.Connection, event_id: int) -> int:
    """What the event's self-pay charges still owe: all its attached payments can go to."""
    return int(conn.execute(
        "SELECT coalesce(sum(amount_cents - applied_cents), 0) FROM charges"
        " WHERE event_id = ? AND payer <> 'insurance'", (event_id,),
    ).fetchone()[0])


def listing(conn: sqlite3.Connection, client_id: int | None, status: str | None) -> Listing:
    """Events by scheduled date, with what is attached to them."""
    if status is not None:
        assert status in EVENT_STATUSES
    cursor = conn.execute(
        "SELECT e.event_key AS event_id, c.client_key AS client_id, e.scheduled_date, e.status,"
        " (SELECT count(*) FROM charges ch WHERE ch.event_id = e.id) AS charges,"
        " (SELECT count(*) FROM payments p WHERE p.event_id = e.id AND p.apply_to = 'event'"
        "   AND p.status <> 'void' AND p.applied_cents < p.amount_cents) AS attached_payments,"
        " (SELECT coalesce(sum(p.amount_cents - p.applied_cents), 0) FROM payments p"
        "   WHERE p.event_id = e.id AND p.apply_to = 'event' AND p.status <> 'void' AND p.applied_cents < p.amount_cents)"
        " AS attached_unapplied_cents"
        " FROM events e JOIN clients c ON c.id = e.client_id"
        " WHERE (?1 IS NULL OR e.client_id = ?1) AND (?2 IS NULL OR e.status = ?2)"
        " ORDER BY e.scheduled_date, e.id",
        (client_id, status),
    )
    return from_cursor(cursor)
