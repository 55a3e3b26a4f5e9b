"""SQL for payments.

Every look-up goes through a UNIQUE key, the primary key or the payments_client index: a clerk's
command never scans.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from payalloc.allocation import Conversion
from payalloc.ids import known
from payalloc.ledger import audit
from payalloc.ledger.clients import mark_for_job


@dataclass(frozen=True)
class PaymentRow:
    id: int
    key: str
    client_id: int
    client_key: str
    received_date: str
    amount_cents: int
    applied_cents: int
    apply_to: str
    entered_apply_to: str
    event_key: str | None
    method: str | None
    reference: str | None
    status: str
    note: str | None
    payer_name: str | None

    @property
    def unapplied_cents(self) -> int:
        return self.amount_cents - self.applied_cents


_PAYMENT_SELECT = (
    "SELECT p.id, p.payment_key, p.client_id, c.client_key, p.received_date, p.amount_cents, p.applied_cents,"
    " p.apply_to, p.entered_apply_to, e.event_key, p.method, p.reference, p.status, p.note, p.payer_name"
    " FROM payments p JOIN clients c ON c.id = p.client_id LEFT JOIN events e ON e.id = p.event_id"
)


def _payment(row: tuple[object, ...]) -> PaymentRow:
    return PaymentRow(*row)  # type: ignore[arg-type]


def find_payment(conn: sqlite3.Connection, payment_key: str) -> PaymentRow | None:
    row = conn.execute(_PAYMENT_SELECT + " WHERE p.payment_key = ?", (payment_key,)).fetchone()
    return None if row is None else _payment(row)


def known_payment(conn: sqlite3.Connection, payment_key: str) -> PaymentRow:
    """The payment of this id, or NotFound naming the id."""
    return known(find_payment(conn, payment_key), "payment", payment_key)


def payment_by_id(conn: sqlite3.Connection, payment_id: int) -> PaymentRow:
    row = conn.execute(_PAYMENT_SELECT + " WHERE p.id = ?", (payment_id,)).fetchone()
    assert row is not None, f"payment row {payment_id} vanished"
    return _payment(row)


def payments_by_keys(conn: sqlite3.Connection, keys: list[str]) -> dict[str, PaymentRow]:
    """The named payments (unknown keys are simply absent), one UNIQUE-key probe each."""
    out: dict[str, PaymentRow] = {}
    for key in dict.fromkeys(keys):
        row = find_payment(conn, key)
        if row is not None:
            out[key] = row
    return out


def payments_of_client(conn: sqlite3.Connection, client_id: int) -> list[PaymentRow]:
    """All payments of one client (void ones too), in order of receipt then entry (payments_client index)."""
    rows = conn.execute(
        _PAYMENT_SELECT + " WHERE p.client_id = ? ORDER BY p.received_date, p.id", (client_id,)
    ).fetchall()
    return [_payment(r) for r in rows]


def insert_payment(
    conn: sqlite3.Connection,
    *,
    key: str,
    client_id: int,
    received_date: str,
    amount_cents: int,
    apply_to: str,
    event_id: int | None,
    method: str | None,
    reference: str | None,
    status: str,
    note: str | None,
    payer_name: str | None,
) -> int:
    cur = conn.execute(
        "INSERT INTO payments (payment_key, client_id, received_date, amount_cents, apply_to, entered_apply_to,"
        " event_id, method, reference, status, note, payer_name) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (key, client_id, received_date, amount_cents, apply_to, apply_to, event_id, method, reference,
         status, note, payer_name),
    )
    if status == "ready" and apply_to != "specific":
        mark_for_job(conn, [client_id])  # work for the next run-job, in the insert's transaction
    return int(cur.lastrowid or 0)


def payment_key_exists(conn: sqlite3.Connection, key: str) -> bool:
    return conn.execute("SELECT 1 FROM payments WHERE payment_key = ?", (key,)).fetchone() is not None


def set_status(conn: sqlite3.Connection, payment_id: int, status: str) -> None:
    conn.execute("UPDATE payments SET status = ? WHERE id = ?", (status, payment_id))


def convert_to_specific(
    conn: sqlite3.Connection, conversions: Sequence[Conversion], *, staff: str | None, job_run_id: int | None,
    now: str,
) -> None:
    """Rule 4: event payments whose event is done or deleted become `specific` (the rest waits for
    the clerk), each with its audit row. The job (staff None, its run), `event delete` and an
    unapply that frees money of a deleted event's payment all convert here."""
    if not conversions:
        return
    keys = {
        row[0]: row[1:]
        for row in conn.execute(
            "SELECT p.id, c.client_key, p.payment_key, e.event_key FROM payments p"
            " JOIN clients c ON c.id = p.client_id JOIN events e ON e.id = p.event_id"
            " WHERE p.id IN (SELECT value FROM json_each(?))",
            (json.dumps([c.payment_id for c in conversions]),),
        )
    }
    cur = conn.executemany(
        "UPDATE payments SET apply_to = 'specific' WHERE id = ? AND apply_to = 'event'",
        [(c.payment_id,) for c in conversions],
    )
    assert cur.rowcount == len(conversions), "an event payment changed under the transaction"
    audit.record_conversions(conn, at=now, staff=staff, job_run_id=job_run_id, conversions=[
        (*keys[c.payment_id], c.event_status, c.unapplied_cents) for c in conversions
    ])


def set_apply_to(conn: sqlite3.Connection, payment_id: int, apply_to: str) -> None:
    conn.execute("UPDATE payments SET apply_to = ? WHERE id = ?", (apply_to, payment_id))
