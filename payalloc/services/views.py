"""What the clerk looks at: the unallocated bucket, one client, one payment, the audit trail.

Read-only; each view reads one consistent snapshot. The `*_json` helpers give the field names
that scripts rely on (money as "1234.50" strings, external ids under their spec names).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from payalloc.dates import days_between, parse_date
from payalloc.ids import parse_id
from payalloc.ledger import charges as charge_ledger
from payalloc.ledger import payments as payment_ledger
from payalloc.ledger import remittances as remittance_ledger
from payalloc.ledger import views as ledger
from payalloc.ledger.charges import ChargeRow
from payalloc.ledger.clients import Client, known_client
from payalloc.ledger.connection import read_txn
from payalloc.ledger.payments import PaymentRow
from payalloc.ledger.remittances import RemittanceRow
from payalloc.money import plain_cents
from payalloc.vocabulary import SELF_PAY_PAYERS

# --- the unallocated bucket -----------------------------------------------------------------------


@dataclass(frozen=True)
class BucketEntry:
    client_key: str
    name: str
    total_cents: int
    unallocated_cents: int
    pending_cents: int
    charges_balance_cents: int
    needs_clerk: bool  # a ready specific payment with money left, and a self-pay balance to apply it to
    days_waiting: int | None  # since the oldest ready payment with money unapplied (None: only pending)

    def as_json(self) -> dict[str, Any]:
        return {
            "client_id": self.client_key,
            "name": self.name,
            "total_payments": plain_cents(self.total_cents),
            "unallocated": plain_cents(self.unallocated_cents),
            "charges_balance": plain_cents(self.charges_balance_cents),
            "needs_clerk": self.needs_clerk,
            "days_waiting": self.days_waiting,
            "pending": plain_cents(self.pending_cents),
        }


def needs_clerk(has_open_specific: bool, charges_balance_cents: int) -> bool:
    """Whether the clerk must act: a ready specific payment has money left and there is a self-pay
    balance to apply it to (money with nothing to pay waits for new charges, or a refund). One rule
    for `unallocated` and `client show`."""
    return has_open_specific and charges_balance_cents > 0


def unallocated(
    conn: sqlite3.Connection, *, now: str, include_pending: bool = False, needs_clerk_only: bool = False
) -> list[BucketEntry]:
    """Clients with a ready payment not fully allocated (and, with include_pending, clients with a
    pending payment), most urgent first: the clerk's work, then the longest waiting, then by id."""
    today = now[:10]
    entries = []
    for row in ledger.bucket(conn, include_pending=include_pending):
        clerk = needs_clerk(row.has_open_specific, row.charges_balance_cents)
        if needs_clerk_only and not clerk:
            continue
        # A post-dated check (received_date ahead of today) has waited no days, not minus some.
        days = None if row.oldest_open_date is None else max(0, days_between(row.oldest_open_date, today))
        entries.append(
            BucketEntry(row.client_key, row.name, row.total_cents, row.unallocated_cents, row.pending_cents,
                        row.charges_balance_cents, clerk, days)
        )
    entries.sort(key=lambda e: (not e.needs_clerk, -(e.days_waiting if e.days_waiting is not None else -1),
                                e.client_key))
    return entries


# --- one client ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientDetail:
    client: Client
    payments: list[PaymentRow]  # every payment, void ones too, in order of receipt
    open_charges: list[ChargeRow]  # self-pay charges with a balance, oldest first
    insurance_charges: list[ChargeRow]  # shown apart: never allocated
    remittances: list[RemittanceRow]

    @property
    def total_cents(self) -> int:
        return sum(p.amount_cents for p in self.payments if p.status != "void")

    @property
    def unallocated_cents(self) -> int:
        return sum(p.unapplied_cents for p in self.payments if p.status == "ready")

    @property
    def pending_cents(self) -> int:
        return sum(p.amount_cents for p in self.payments if p.status == "pending")

    @property
    def charges_balance_cents(self) -> int:
        return sum(c.balance_cents for c in self.open_charges)

    @property
    def needs_clerk(self) -> bool:
        return needs_clerk(any(p.status == "ready" and p.apply_to == "specific" and p.unapplied_cents > 0
                               for p in self.payments), self.charges_balance_cents)

    def as_json(self) -> dict[str, Any]:
        return {
            "client_id": self.client.key,
            "name": self.client.name,
            "responsible_party": self.client.responsible_party,
            "total_payments": plain_cents(self.total_cents),
            "unallocated": plain_cents(self.unallocated_cents),
            "charges_balance": plain_cents(self.charges_balance_cents),
            "pending": plain_cents(self.pending_cents),
            "needs_clerk": self.needs_clerk,
            "payments": [payment_json(p) for p in self.payments],
            "open_charges": [charge_json(c) for c in self.open_charges],
            "insurance_charges": [charge_json(c) for c in self.insurance_charges],
            "remittances": [remittance_json(r) for r in self.remittances],
        }


def client_detail(conn: sqlite3.Connection, client_key: str) -> ClientDetail:
    """The row detail of the bucket: figures, payments with notes, open charges, remittances."""
    key = parse_id(client_key, "client_id")
    with read_txn(conn):
        client = known_client(conn, key)
        charges = charge_ledger.charges_of_client(conn, client.id)
        return ClientDetail(
            client,
            payment_ledger.payments_of_client(conn, client.id),
            [c for c in charges if c.payer in SELF_PAY_PAYERS and c.balance_cents > 0],
            [c for c in charges if c.payer not in SELF_PAY_PAYERS],
            remittance_ledger.remittances_of_client(conn, client.id),
        )


# --- one payment ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentDetail:
    payment: PaymentRow
    remittances: list[RemittanceRow]

    def as_json(self) -> dict[str, Any]:
        out = payment_json(self.payment)
        out["remittances"] = [remittance_json(r) | {"origin": origin(r)} for r in self.remittances]
        return out


def payment_detail(conn: sqlite3.Connection, payment_key: str) -> PaymentDetail:
    key = parse_id(payment_key, "payment_id")
    with read_txn(conn):
        payment = payment_ledger.known_payment(conn, key)
        return PaymentDetail(payment, remittance_ledger.remittances_of_payment(conn, payment.id))


def origin(r: RemittanceRow) -> str:
    """Where a remittance came from: the staff who applied it, or the job run and its rule."""
    if r.source == "job":
        return f"job run {r.job_run_id} ({r.rule})"
    return f"{r.staff}, rest of #{r.replaces_id}" if r.replaces_id is not None else str(r.staff)


# --- the audit trail -----------------------------------------------------------------------------


def audit_trail(
    conn: sqlite3.Connection, *, client: str | None = None, since: str | None = None
) -> list[ledger.AuditRow]:
    client_key = parse_id(client, "client_id") if client is not None else None
    since_date = parse_date(since) if since is not None else None
    with read_txn(conn):
        if client_key is not None:
            known_client(conn, client_key)  # as the other --client filters say
        return ledger.audit_rows(conn, client_key=client_key, since=since_date)


def audit_json(a: ledger.AuditRow) -> dict[str, Any]:
    return {
        "id": a.id, "at": a.at, "staff": a.staff, "action": a.action, "client_id": a.client_key,
        "payment_id": a.payment_key, "charge_id": a.charge_key, "event_id": a.event_key,
        "remittance_id": a.remittance_id, "job_run_id": a.job_run_id, "reason": a.reason, "detail": a.detail,
    }


# --- JSON shapes shared by the views ---------------------------------------------------------------


def payment_json(p: PaymentRow) -> dict[str, Any]:
    return {
        "payment_id": p.key, "client_id": p.client_key, "received_date": p.received_date,
        "amount": plain_cents(p.amount_cents), "unapplied": plain_cents(p.unapplied_cents),
        "apply_to": p.apply_to, "entered_apply_to": p.entered_apply_to, "event_id": p.event_key,
        "status": p.status, "method": p.method, "reference": p.reference, "note": p.note,
        "payer_name": p.payer_name,
    }


def charge_json(c: ChargeRow) -> dict[str, Any]:
    return {
        "charge_id": c.key, "client_id": c.client_key, "service_date": c.service_date,
        "service_code": c.service_code, "description": c.description, "payer": c.payer,
        "amount": plain_cents(c.amount_cents), "balance": plain_cents(c.balance_cents),
        "event_id": c.event_key, "allocatable": c.payer in SELF_PAY_PAYERS,
    }


def remittance_json(r: RemittanceRow) -> dict[str, Any]:
    return {
        "id": r.id, "payment_id": r.payment_key, "charge_id": r.charge_key, "client_id": r.client_key,
        "amount": plain_cents(r.amount_cents), "status": r.status, "source": r.source, "rule": r.rule,
        "staff": r.staff, "job_run_id": r.job_run_id, "created_at": r.created_at, "replaces_id": r.replaces_id,
        "reversed_at": r.reversed_at, "reversed_by": r.reversed_by, "reversal_reason": r.reversal_reason,
    }
