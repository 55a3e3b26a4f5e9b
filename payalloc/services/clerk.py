"""The clerk's allocations: apply (rule 3), unapply (rule 5), reallocate.

Gather (SQL) -> check (pure, payalloc.manual) -> write (SQL), all inside one BEGIN IMMEDIATE, so
the figures checked are the figures written against even with run-job or another clerk at work.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from payalloc import manual
from payalloc.allocation import Conversion
from payalloc.csv_text import CsvText, blank, close_source, open_source, source_name, wrong_width
from payalloc.errors import InputError, Problem, ProblemsError
from payalloc.ids import parse_id, parse_reason, parsed
from payalloc.ledger import audit
from payalloc.ledger import charges as charge_ledger
from payalloc.ledger import payments as payment_ledger
from payalloc.ledger import remittances as ledger
from payalloc.ledger.connection import write_txn
from payalloc.ledger.events import find_event
from payalloc.money import format_cents, parse_cents, plain_cents

FILE_COLUMNS = ("payment_id", "charge_id", "amount")


@dataclass(frozen=True)
class Applied:
    """One remittance a clerk created, with the figures it left behind."""

    remittance_id: int
    payment_key: str
    charge_key: str
    client_key: str
    amount_cents: int
    staff: str
    created_at: str
    payment_unapplied_cents: int
    charge_balance_cents: int
    wheres: tuple[str, ...] = ()  # the lines it adds up ("line 2", "line 5"): a file may name a pair twice


@dataclass(frozen=True)
class ApplyResult:
    applied: list[Applied]
    ignored_columns: list[str]

    @property
    def total_cents(self) -> int:
        return sum(a.amount_cents for a in self.applied)


@dataclass(frozen=True)
class UnapplyResult:
    remittance: ledger.RemittanceRow  # as it was before the reversal
    unapplied_cents: int
    kept_id: int | None  # the new remittance holding the rest, when only part was unapplied
    kept_cents: int
    payment_apply_to: str  # the payment's apply-to after the unapply: if not 'specific', run-job applies it again


@dataclass(frozen=True)
class ReallocateResult:
    unapplied: UnapplyResult
    applied: list[Applied]


# --- apply ---------------------------------------------------------------------------------------


def apply_pairs(
    conn: sqlite3.Connection, payment_key: str, pairs: Sequence[str], *, now: str, staff: str
) -> ApplyResult:
    """`payalloc apply PAYMENT_ID CHARGE_ID=AMOUNT ...`: the whole set, or nothing."""
    try:  # once, as itself: not again under each pair, as if the pair were wrong
        parse_id(payment_key, "payment_id")
    except InputError as error:
        raise InputError(f"nothing was applied: {error}") from None
    if not pairs:
        raise InputError("nothing to apply: give CHARGE_ID=AMOUNT pairs after the payment id, or --file")
    lines, problems = manual.pair_set(payment_key, pairs)
    return ApplyResult(_apply(conn, lines, problems, now=now, staff=staff), [])


def apply_file(conn: sqlite3.Connection, path: str, *, now: str, staff: str) -> ApplyResult:
    """`payalloc apply --file F`: rows payment_id,charge_id,amount (header required; `-` = stdin)."""
    raw, ignored, problems = read_apply_file(path)
    if not raw and not problems:
        raise InputError(f"{source_name(path)} has no allocation rows under its header")
    lines, more = manual.parse_lines(raw)
    return ApplyResult(_apply(conn, lines, problems + more, now=now, staff=staff, locate=True), ignored)


def read_apply_file(path: str) -> tuple[list[manual.RawLine], list[str], list[Problem]]:
    """The rows of an apply file, the names of the columns it ignores, and its rows of the wrong
    width (reported with every other problem of the set, not alone). Read as import reads a file."""
    raw, name, _ = open_source(path)
    try:
        text = CsvText(raw, name)
        header = text.header(FILE_COLUMNS, FILE_COLUMNS, "an apply file")
        payment, charge, amount = (header.index[c] for c in FILE_COLUMNS)
        lines: list[manual.RawLine] = []
        problems: list[Problem] = []
        for line, row in text.numbered():
            if blank(row):
                continue
            if (width := wrong_width(row, header.width)) is not None:
                problems.append(Problem(f"line {line}", width, line))
                continue
            lines.append(manual.RawLine(f"line {line}", row[payment], row[charge], row[amount], line))
    finally:
        close_source(raw)
    return lines, header.unknown, problems


def _apply(
    conn: sqlite3.Connection, lines: list[manual.Line], problems: list[Problem], *, now: str, staff: str,
    locate: bool = False,
) -> list[Applied]:
    with write_txn(conn):
        return _check_and_write(conn, lines, problems, now=now, staff=staff, reason=None, locate=locate)


def _check_and_write(
    conn: sqlite3.Connection,
    lines: list[manual.Line],
    problems: list[Problem],
    *,
    now: str,
    staff: str,
    reason: str | None,
    locate: bool = False,
    refused: str = "nothing was applied",
) -> list[Applied]:
    """Inside the caller's transaction: check the set against the ledger as it is now, then write it.
    `refused` opens the message of a refusal (the caller's transaction rolls back all of it)."""
    payments = payment_ledger.payments_by_keys(conn, [line.payment_key for line in lines])
    charges = charge_ledger.charges_by_keys(conn, [line.charge_key for line in lines])
    problems = problems + manual.check(
        lines,
        {k: manual.PaymentState(p.key, p.client_key, p.status, p.apply_to, p.unapplied_cents)
         for k, p in payments.items()},
        {k: manual.ChargeState(c.key, c.client_key, c.payer, c.balance_cents) for k, c in charges.items()},
        locate=locate,
    )
    if problems:
        count = len(problems)
        raise ProblemsError(
            f"{refused}: {count} problem{'s' if count != 1 else ''} with the allocations", manual.in_order(problems)
        )
    applied_ids: list[tuple[int, manual.ManualAllocation]] = []
    for allocation in manual.merge(lines):
        payment = payments[allocation.payment_key]
        charge = charges[allocation.charge_key]
        remittance_id = ledger.insert_manual(
            conn, payment_id=payment.id, charge_id=charge.id, client_id=payment.client_id,
            amount_cents=allocation.amount_cents, staff=staff, now=now,
        )
        audit.record(
            conn, at=now, staff=staff, action=audit.APPLY, client_key=payment.client_key, payment_key=payment.key,
            charge_key=charge.key, remittance_id=remittance_id, reason=reason,
            detail={"amount": plain_cents(allocation.amount_cents)},
        )
        applied_ids.append((remittance_id, allocation))
    # The figures after the whole set: read back, the triggers computed them.
    after_payments = payment_ledger.payments_by_keys(conn, list(payments))
    after_charges = charge_ledger.charges_by_keys(conn, list(charges))
    return [
        Applied(
            remittance_id, a.payment_key, a.charge_key, payments[a.payment_key].client_key, a.amount_cents, staff, now,
            after_payments[a.payment_key].unapplied_cents, after_charges[a.charge_key].balance_cents, a.wheres,
        )
        for remittance_id, a in applied_ids
    ]


# --- unapply and reallocate ------------------------------------------------------------------------


def unapply(
    conn: sqlite3.Connection,
    remittance_id: int,
    *,
    reason: str,
    now: str,
    staff: str,
    amount: str | None = None,
) -> UnapplyResult:
    """Reverse a remittance (rule 5); with `amount` below its amount, the rest stays applied
    as a new remittance that replaces it, in the same transaction."""
    reason = parse_reason(reason)
    amount_cents = parsed(parse_cents, amount) if amount is not None else None
    with write_txn(conn):
        result = _unapply(conn, remittance_id, amount_cents, reason=reason, now=now, staff=staff)
        audit.record(
            conn, at=now, staff=staff, action=audit.UNAPPLY, client_key=result.remittance.client_key,
            payment_key=result.remittance.payment_key, charge_key=result.remittance.charge_key,
            remittance_id=remittance_id, reason=reason,
            detail={"amount": plain_cents(result.unapplied_cents), "was_status": result.remittance.status,
                    "kept_remittance_id": result.kept_id, "kept": plain_cents(result.kept_cents)},
        )
    return result


def _unapply(
    conn: sqlite3.Connection, remittance_id: int, amount_cents: int | None, *, reason: str, now: str, staff: str
) -> UnapplyResult:
    remittance = ledger.live_remittance(conn, remittance_id)
    if amount_cents is not None and amount_cents > remittance.amount_cents:
        raise InputError(
            f"{format_cents(amount_cents)} is more than the {format_cents(remittance.amount_cents)}"
            f" of remittance {remittance_id}"
        )
    kept_cents = 0 if amount_cents is None else remittance.amount_cents - amount_cents
    if kept_cents:
        owner = payment_ledger.payment_by_id(conn, remittance.payment_id)
        if owner.apply_to != "specific":  # rule 2: what stays applied would be applied by hand
            raise InputError(
                f"remittance {remittance_id} belongs to payment {owner.key}, which run-job applies"
                f" ({owner.apply_to}); unapply it whole (the next run-job applies the money again),"
                f" or take the payment over first: payalloc payment mode {owner.key} specific"
            )
    ledger.reverse_remittance(conn, remittance_id, staff=staff, reason=reason, now=now)
    kept_id = None
    if kept_cents:
        kept_id = ledger.insert_manual(
            conn, payment_id=remittance.payment_id, charge_id=remittance.charge_id, client_id=remittance.client_id,
            amount_cents=kept_cents, staff=staff, now=now, replaces_id=remittance_id,
        )
    payment = payment_ledger.payment_by_id(conn, remittance.payment_id)
    if payment.apply_to == "event" and payment.event_key is not None:
        event = find_event(conn, payment.event_key)
        if event is not None and event.status == "deleted":
            # Rule 4: money is never left attached to a deleted event; it waits for the clerk.
            payment_ledger.convert_to_specific(
                conn, [Conversion(payment.id, payment.client_id, event.id, "deleted", payment.unapplied_cents)],
                staff=staff, job_run_id=None, now=now,
            )
            payment = payment_ledger.payment_by_id(conn, payment.id)
    return UnapplyResult(remittance, remittance.amount_cents - kept_cents, kept_id, kept_cents, payment.apply_to)


def reallocate(
    conn: sqlite3.Connection,
    remittance_id: int,
    pairs: Sequence[str],
    *,
    reason: str,
    now: str,
    staff: str,
) -> ReallocateResult:
    """Unapply a remittance and apply its payment to other charges, in one transaction.

    The new allocations are checked against the ledger as it is after the unapply. Only
    `specific` payments: the job, not the clerk, decides where oldest and event payments go (rule 2).
    """
    reason = parse_reason(reason)
    if not pairs:
        raise InputError("nothing to reallocate to: give CHARGE_ID=AMOUNT pairs")
    with write_txn(conn):
        remittance = ledger.live_remittance(conn, remittance_id)
        payment = payment_ledger.payment_by_id(conn, remittance.payment_id)
        if payment.apply_to != "specific":
            raise InputError(
                f"remittance {remittance_id} belongs to payment {payment.key}, which run-job applies"
                f" ({payment.apply_to}); to allocate it by hand, change its mode first:"
                f" payalloc payment mode {payment.key} specific"
            )
        lines, problems = manual.pair_set(payment.key, pairs)
        result = _unapply(conn, remittance_id, None, reason=reason, now=now, staff=staff)
        applied = _check_and_write(conn, lines, problems, now=now, staff=staff, reason=reason,
                                   refused=f"nothing was changed (remittance {remittance_id} stays)")
        audit.record(
            conn, at=now, staff=staff, action=audit.REALLOCATE, client_key=payment.client_key, payment_key=payment.key,
            charge_key=remittance.charge_key, remittance_id=remittance_id, reason=reason,
            detail={"amount": plain_cents(remittance.amount_cents),
                    "to": [{"remittance_id": a.remittance_id, "charge_id": a.charge_key,
                            "amount": plain_cents(a.amount_cents)} for a in applied]},
        )
    return ReallocateResult(result, applied)
