"""`payalloc payment record|ready|void|mode|show|list`: the clerk's payments (rules 3, 5, 7)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from payalloc.cli import output
from payalloc.cli.common import (
    REVERSED_IN_GL,
    ApplyTo,
    ClientOpt,
    CsvOpt,
    JsonOpt,
    LimitOpt,
    ReasonOpt,
    one_format,
)
from payalloc.cli.output import Column
from payalloc.cli.state import STATE

PaymentArg = Annotated[str, typer.Argument(help="The payment id.", show_default=False, metavar="PAYMENT_ID")]



class PaymentStatus(StrEnum):
    ready = "ready"
    pending = "pending"
    void = "void"


class Mode(StrEnum):
    oldest = "oldest"
    specific = "specific"


class Method(StrEnum):
    cash = "cash"
    check = "check"
    card = "card"
    eft = "eft"
    other = "other"


def record(
    client: Annotated[str, typer.Option("--client", help="The client's id.", show_default=False)],
    amount: Annotated[str, typer.Option("--amount", help="Amount received, e.g. 1,234.50.", show_default=False)],
    date: Annotated[str, typer.Option("--date", help="Date received, YYYY-MM-DD.", show_default=False)],
    apply_to: Annotated[
        ApplyTo,
        typer.Option("--apply-to", help="oldest: by run-job; specific: by the clerk; event: to --event.",
                     show_default=False),
    ],
    event: Annotated[str | None, typer.Option("--event", help="The event id (with --apply-to event).")] = None,
    method: Annotated[Method | None, typer.Option("--method", help="How it was paid.")] = None,
    reference: Annotated[str | None, typer.Option("--reference", help="Check number, card slip, ...")] = None,
    note: Annotated[str | None, typer.Option("--note", help="A note the clerk sees when allocating.")] = None,
    payer_name: Annotated[str | None, typer.Option("--payer-name", help="Who paid, if not the client.")] = None,
    pending: Annotated[bool, typer.Option("--pending", help="Not reconciled yet: never allocated until ready.")] = False,
    payment_id: Annotated[str | None, typer.Option("--id", help="The payment id (default: generated).")] = None,
) -> None:
    """Record a payment received and print its id.

    Example: payalloc payment record --client C-1003 --amount 60.00 --date 2026-11-20 --apply-to specific --method check --reference 1042
    """
    from payalloc.dates import utc_now
    from payalloc.services import payments

    now = utc_now()
    with STATE.ledger() as conn:
        recorded = payments.record_payment(
            conn, now=now, staff=STATE.staff, client=client, amount=amount, date=date,
            apply_to=apply_to.value, event=event, method=method.value if method else None, reference=reference,
            note=note, payer_name=payer_name, pending=pending, payment_id=payment_id,
        )
    key, twins = recorded.key, recorded.look_alikes
    output.line(key)
    if twins:
        output.warn(f"payment {key}: {'payments' if len(twins) > 1 else 'payment'} {', '.join(twins)} of the same"
                    f" client {'have' if len(twins) > 1 else 'has'} the same amount, date and reference; if it is the"
                    f" same money, void this one: payalloc payment void {key} --reason \"recorded twice\"")
    if recorded.future_dated:
        output.warn(f"payment {key}: its received date {recorded.received_date} is after today ({now[:10]}, UTC)")


def ready(payment_id: PaymentArg) -> None:
    """Mark a pending payment reconciled: from now on it can be allocated.

    Example: payalloc payment ready P-3012
    """
    from payalloc.dates import utc_now
    from payalloc.services import payments

    with STATE.ledger() as conn:
        changed = payments.mark_ready(conn, payment_id, now=utc_now(), staff=STATE.staff)
    output.message(f"payment {payment_id.strip()} is {'now' if changed else 'already'} ready")


def void(payment_id: PaymentArg, reason: ReasonOpt) -> None:
    """Void a payment (bounced check): reverse all its remittances, then mark it void.

    Example: payalloc payment void P-3002 --reason "check returned NSF"
    """
    from payalloc.dates import utc_now
    from payalloc.money import format_cents
    from payalloc.services import payments

    with STATE.ledger() as conn:
        result = payments.void_payment(conn, payment_id, reason=reason, now=utc_now(), staff=STATE.staff)
    count = len(result.reversed_ids)
    if not count:
        output.message(f"payment {result.payment_key} is void; it had no remittances to reverse")
        return
    posted = result.posted_count
    which = "it was" if count == 1 else f"{posted} of them {'was' if posted == 1 else 'were'}"
    output.message(
        f"payment {result.payment_key} is void; reversed {count} remittance{'s' if count != 1 else ''}"
        f" ({format_cents(result.reversed_cents)})"
        + (f"; {which} posted, {REVERSED_IN_GL}" if posted else "")
    )


def mode(
    payment_id: PaymentArg,
    new_mode: Annotated[Mode, typer.Argument(metavar="MODE", help="oldest (run-job applies it) or specific "
                                             "(the clerk applies it).", show_default=False)],
) -> None:
    """Change how a payment is applied: by run-job to the oldest charges, or by hand.

    Example: payalloc payment mode P-3015 specific
    """
    from payalloc.dates import utc_now
    from payalloc.services import payments

    with STATE.ledger() as conn:
        change = payments.change_mode(conn, payment_id, new_mode.value, now=utc_now(), staff=STATE.staff)
    key = payment_id.strip()
    if change.left_event:
        output.message(f"payment {key} now applies to {new_mode.value}; it no longer waits for event "
                       f"{change.left_event}")
    elif change.changed:
        output.message(f"payment {key} now applies to {new_mode.value}")
    else:
        output.message(f"payment {key} already applies to {new_mode.value}; nothing changed")


def show(payment_id: PaymentArg, json_out: JsonOpt = False) -> None:
    """Show one payment, its note, and each remittance with where it came from.

    Example: payalloc payment show P-3004 --json
    """
    from payalloc.money import format_cents
    from payalloc.services import views

    with STATE.ledger() as conn:
        detail = views.payment_detail(conn, payment_id)
    if json_out:
        output.emit_json(detail.as_json())
        return
    p = detail.payment
    output.fields([
        ("Payment", p.key), ("Client", p.client_key), ("Received", p.received_date),
        ("Amount", format_cents(p.amount_cents)), ("Unapplied", format_cents(p.unapplied_cents)),
        ("Apply to", p.apply_to + (f" (entered as {p.entered_apply_to})" if p.entered_apply_to != p.apply_to else "")),
        ("Event", p.event_key or ""), ("Status", p.status), ("Method", p.method or ""),
        ("Reference", p.reference or ""), ("Payer", p.payer_name or ""), ("Note", p.note or ""),
    ])
    output.table(
        [output.Column("Id", "id"), output.Column("Charge", "charge_id"),
         output.Column("Amount", "amount", numeric=True), output.Column("Status", "status"),
         output.Column("From", "origin"), output.Column("Created", "created_at"),
         output.Column("Reversed", "reversed", text=True)],
        [{"id": r.id, "charge_id": r.charge_key, "amount": format_cents(r.amount_cents), "status": r.status,
          "origin": views.origin(r), "created_at": r.created_at[:10],
          "reversed": f"{r.reversed_at[:10]} {r.reversed_by or 'run-job'}: {r.reversal_reason}" if r.reversed_at else ""}
         for r in detail.remittances],
        title="Remittances",
        empty="no remittances",
    )


def payment_list(
    client: ClientOpt = None,
    status: Annotated[PaymentStatus | None, typer.Option("--status", help="Only payments with this status.")] = None,
    apply_to: Annotated[ApplyTo | None, typer.Option("--apply-to", help="Only payments with this apply-to.")] = None,
    json_out: JsonOpt = False,
    csv_out: CsvOpt = False,
    limit: LimitOpt = None,
) -> None:
    """List payments, oldest received first, with what is still unapplied. A table shows the
    most recent (--limit N: the last N in every format).

    Example: payalloc payment list --client C-1003 --status ready --json
    """
    one_format(json_out, csv_out)
    from payalloc.services.listings import list_payments

    columns = [Column("Payment", "payment_id"), Column("Client", "client_id"), Column("Received", "received_date"),
               Column("Amount", "amount", numeric=True), Column("Unapplied", "unapplied", numeric=True),
               Column("Apply to", "apply_to"), Column("Event", "event_id"), Column("Status", "status"),
               Column("Method", "method", optional=True), Column("Reference", "reference", text=True, optional=True)]
    with STATE.ledger() as conn, list_payments(conn, client=client, status=status and status.value,
                                               apply_to=apply_to and apply_to.value) as listing:
        output.listing(listing, columns, json_out, csv_out, limit, noun="payment", empty="no payments match",
                       end="last")


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    group = groups["payment"]
    group.command("record", short_help="Record a payment received; prints its id.")(record)
    group.command("ready", short_help="Mark a pending payment reconciled.")(ready)
    group.command("void", short_help="Void a payment (a bounced check).")(void)
    group.command("mode", short_help="Change how a payment is applied.")(mode)
    group.command("show", short_help="One payment, its note and its remittances.")(show)
    group.command("list", short_help="List payments, with what is still unapplied.")(payment_list)
