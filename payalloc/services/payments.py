"""Payments as the clerk handles them: record, reconcile (ready), void, change the apply-to mode.

Each use case is one write transaction with its audit row; text from the user is checked here.
"""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass

from payalloc.dates import parse_date
from payalloc.errors import InputError
from payalloc.ids import MAX_NAME_LENGTH, MAX_TEXT_LENGTH, parse_id, parse_reason, parse_text, parsed
from payalloc.ledger import audit
from payalloc.ledger import payments as ledger
from payalloc.ledger import remittances as remittance_ledger
from payalloc.ledger.clients import known_client
from payalloc.ledger.connection import write_txn
from payalloc.ledger.events import known_event
from payalloc.money import parse_cents, plain_cents
from payalloc.vocabulary import APPLY_TO, METHODS, MODES


@dataclass(frozen=True)
class VoidResult:
    payment_key: str
    reversed_ids: list[int]
    reversed_cents: int
    posted_count: int = 0  # of the reversed ones, those posted: reversing lines went to the journal


@dataclass(frozen=True)
class RecordedPayment:
    key: str
    look_alikes: list[str]  # recorded all the same: two equal checks on one day happen, but rarely
    received_date: str
    future_dated: bool  # after today (UTC): a typo, most likely; money is not received in the future


def record_payment(
    conn: sqlite3.Connection,
    *,
    now: str,
    staff: str,
    client: str,
    amount: str,
    date: str,
    apply_to: str,
    event: str | None = None,
    method: str | None = None,
    reference: str | None = None,
    note: str | None = None,
    payer_name: str | None = None,
    pending: bool = False,
    payment_id: str | None = None,
) -> RecordedPayment:
    """Record a payment received: its payment_id (generated unless given), and what the clerk
    should look at again (look-alikes, a received date after today)."""
    client_key = parse_id(client, "client_id")
    amount_cents = parsed(parse_cents, amount)  # a name typed there is not echoed (ids.prose)
    received_date = parsed(parse_date, date)
    if apply_to not in APPLY_TO:
        raise InputError(f"apply-to '{apply_to}' is not one of {', '.join(APPLY_TO)}")
    if method is not None and method not in METHODS:
        raise InputError(f"method '{method}' is not one of {', '.join(METHODS)}")
    event_key = parse_id(event, "event_id") if event is not None else None
    if apply_to == "event" and event_key is None:
        raise InputError("a payment applied to an event needs --event EVENT_ID")
    if apply_to != "event" and event_key is not None:
        raise InputError(f"--event is only for --apply-to event (this payment applies to {apply_to})")
    key = parse_id(payment_id, "payment_id") if payment_id is not None else None
    with write_txn(conn):
        client_row = known_client(conn, client_key)
        event_id = None
        if event_key is not None:
            event_row = known_event(conn, event_key)
            if event_row.client_id != client_row.id:
                raise InputError(f"event {event_key} is not an event of client {client_key}")
            if event_row.status == "deleted":
                raise InputError(f"event {event_key} is deleted; choose another event or --apply-to specific")
            event_id = event_row.id
        if key is None:
            key = _new_key(conn, now)
        elif ledger.payment_key_exists(conn, key):
            raise InputError(f"payment {key} already exists")
        status = "pending" if pending else "ready"
        ledger.insert_payment(
            conn, key=key, client_id=client_row.id, received_date=received_date, amount_cents=amount_cents,
            apply_to=apply_to, event_id=event_id, method=method, reference=_text(reference, "--reference", MAX_NAME_LENGTH),
            status=status, note=_text(note, "--note"), payer_name=_text(payer_name, "--payer-name", MAX_NAME_LENGTH),
        )
        audit.record(
            conn, at=now, staff=staff, action=audit.PAYMENT_RECORD, client_key=client_key, payment_key=key,
            event_key=event_key,
            detail={"amount": plain_cents(amount_cents), "received_date": received_date, "apply_to": apply_to,
                    "status": status},
        )
        twins = _look_alikes(conn, ledger.known_payment(conn, key))
    return RecordedPayment(key, twins, received_date, received_date > now[:10])


def _look_alikes(conn: sqlite3.Connection, payment: ledger.PaymentRow) -> list[str]:
    """The client's other payments, not void, with the same amount, received date and reference as
    this one: the same check recorded twice, or typed in after the bank file brought it."""
    same = (payment.amount_cents, payment.received_date, payment.reference)
    return [p.key for p in ledger.payments_of_client(conn, payment.client_id)
            if p.id != payment.id and p.status != "void" and (p.amount_cents, p.received_date, p.reference) == same]


def _new_key(conn: sqlite3.Connection, now: str) -> str:
    # P-<entry date>-<6 hex>: sortable by day, and a collision is retried, never overwritten.
    day = now[:10].replace("-", "")
    while True:
        key = f"P-{day}-{secrets.token_hex(3)}"
        if not ledger.payment_key_exists(conn, key):
            return key


def _text(value: str | None, what: str, limit: int = MAX_TEXT_LENGTH) -> str | None:
    """The limits of the CSV import's columns (ids.py): a reference or a name, a note."""
    if value is None:
        return None
    return parse_text(value, what, limit) or None


def _payment(conn: sqlite3.Connection, payment_key: str) -> ledger.PaymentRow:
    return ledger.known_payment(conn, parse_id(payment_key, "payment_id"))


def mark_ready(conn: sqlite3.Connection, payment_key: str, *, now: str, staff: str) -> bool:
    """Reconcile a pending payment. Returns False when it was already ready (nothing to do)."""
    with write_txn(conn):
        payment = _payment(conn, payment_key)
        if payment.status == "void":
            raise InputError(f"payment {payment.key} is void and cannot become ready")
        if payment.status == "ready":
            return False
        ledger.set_status(conn, payment.id, "ready")
        audit.record(conn, at=now, staff=staff, action=audit.PAYMENT_READY, client_key=payment.client_key,
                     payment_key=payment.key)
    return True


def void_payment(conn: sqlite3.Connection, payment_key: str, *, reason: str, now: str, staff: str) -> VoidResult:
    """Void a payment (bounced check): reverse all its remittances, then mark it void — one transaction."""
    reason = parse_reason(reason, "say why the payment is voided")
    with write_txn(conn):
        payment = _payment(conn, payment_key)
        if payment.status == "void":
            raise InputError(f"payment {payment.key} is already void")
        reversed_ids: list[int] = []
        reversed_cents = posted_count = 0
        batch_id: int | None = None
        for remittance in remittance_ledger.remittances_of_payment(conn, payment.id):
            if remittance.status == "reversed":
                continue
            posted_count += remittance.status == "posted"
            if remittance.status == "posted" and batch_id is None:
                # One reversing batch for all of the payment's posted remittances.
                batch_id = remittance_ledger.new_reverse_batch(conn, staff=staff, now=now)
            remittance_ledger.reverse_remittance(
                conn, remittance.id, staff=staff, reason=f"payment {payment.key} voided: {reason}", now=now,
                batch_id=batch_id,
            )
            reversed_ids.append(remittance.id)
            reversed_cents += remittance.amount_cents
        ledger.set_status(conn, payment.id, "void")
        audit.record(
            conn, at=now, staff=staff, action=audit.PAYMENT_VOID, client_key=payment.client_key,
            payment_key=payment.key, reason=reason,
            detail={"amount": plain_cents(payment.amount_cents), "reversed_remittances": reversed_ids,
                    "reversed": plain_cents(reversed_cents)},
        )
    return VoidResult(payment.key, reversed_ids, reversed_cents, posted_count)


@dataclass(frozen=True)
class ModeChange:
    changed: bool  # False: the payment already had that mode
    left_event: str | None = None  # an event payment taken over: the event it no longer waits for


def change_mode(conn: sqlite3.Connection, payment_key: str, mode: str, *, now: str, staff: str) -> ModeChange:
    """Switch how a payment is applied (oldest: by run-job; specific: by the clerk). An event
    payment taken over this way leaves its event (rule 4 would have kept it there until the
    event is done or deleted): the clerk is told which."""
    if mode not in MODES:
        raise InputError(f"mode '{mode}' is not one of {', '.join(MODES)}")
    with write_txn(conn):
        payment = _payment(conn, payment_key)
        if payment.status == "void":
            raise InputError(f"payment {payment.key} is void; its mode cannot change")
        if payment.apply_to == mode:
            return ModeChange(False)
        ledger.set_apply_to(conn, payment.id, mode)
        audit.record(
            conn, at=now, staff=staff, action=audit.PAYMENT_MODE, client_key=payment.client_key,
            payment_key=payment.key, event_key=payment.event_key,
            detail={"from": payment.apply_to, "to": mode,
                    "unapplied": plain_cents(payment.unapplied_cents)},
        )
    return ModeChange(True, payment.event_key if payment.apply_to == "event" else None)

