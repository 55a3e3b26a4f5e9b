"""`payalloc client list`, and `client show`: the row detail of the unallocated bucket (the Apply
Payments screen)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from payalloc.cli import output
from payalloc.cli.common import CsvOpt, JsonOpt, LimitOpt, one_format
from payalloc.cli.output import Column
from payalloc.cli.state import STATE

if TYPE_CHECKING:
    from payalloc.ledger.charges import ChargeRow
    from payalloc.services.views import ClientDetail


def show(
    client_id: Annotated[str, typer.Argument(help="The client's id.", show_default=False, metavar="CLIENT_ID")],
    json_out: JsonOpt = False,
) -> None:
    """Show one client: the three figures, payments with notes, open self-pay charges oldest first,
    insurance charges apart (never allocated), and the remittances.

    Example: payalloc client show C-1003
    """
    from payalloc.money import format_cents
    from payalloc.services import views

    with STATE.ledger() as conn:
        d = views.client_detail(conn, client_id)
    if json_out:
        output.emit_json(d.as_json())
        return
    output.fields([
        ("Client", d.client.key), ("Name", d.client.name),
        ("Responsible party", d.client.responsible_party or ""),
        ("Total payments", format_cents(d.total_cents)),
        ("Unallocated", format_cents(d.unallocated_cents)),
        ("Self-pay balance", format_cents(d.charges_balance_cents)),
        ("Pending", format_cents(d.pending_cents)),
        ("Needs clerk", "yes" if d.needs_clerk else "no"),
    ])
    _payments(d)
    _charges(d)
    output.table(
        [output.Column("Id", "id"), output.Column("Payment", "payment_id"),
         output.Column("Charge", "charge_id"), output.Column("Amount", "amount", numeric=True),
         output.Column("Status", "status"), output.Column("From", "origin"), output.Column("Created", "created_at")],
        [{"id": r.id, "payment_id": r.payment_key, "charge_id": r.charge_key, "amount": format_cents(r.amount_cents),
          "status": r.status, "origin": views.origin(r), "created_at": r.created_at[:10]} for r in d.remittances],
        title="Remittances", empty="no remittances", section=True,
    )


def _payments(d: ClientDetail) -> None:
    """The client's payments, then their method, reference and note where they have any."""
    from payalloc.money import format_cents

    # Method, reference and note get their own table so that the figures stay readable on an
    # 80-column terminal.
    output.table(
        [output.Column("Payment", "payment_id"), output.Column("Received", "received_date"),
         output.Column("Amount", "amount", numeric=True), output.Column("Unapplied", "unapplied", numeric=True),
         output.Column("Apply to", "apply_to"), output.Column("Status", "status")],
        [{"payment_id": p.key, "received_date": p.received_date, "amount": format_cents(p.amount_cents),
          "unapplied": format_cents(p.unapplied_cents),
          "apply_to": p.apply_to + (f" {p.event_key}" if p.apply_to == "event" and p.event_key else ""),
          "status": p.status} for p in d.payments],
        title="Payments", empty="no payments", section=True,
    )
    described = [p for p in d.payments if p.note or p.method or p.reference or p.payer_name]
    if described:
        output.table(
            [output.Column("Payment", "payment_id"), output.Column("Method", "method"),
             output.Column("Reference", "reference", text=True), output.Column("Payer", "payer_name", text=True),
             output.Column("Note", "note", text=True)],
            [{"payment_id": p.key, "method": p.method or "", "reference": p.reference or "",
              "payer_name": p.payer_name or "", "note": p.note or ""} for p in described],
            title="Payment notes",
        )


def _charges(d: ClientDetail) -> None:
    """Open self-pay charges oldest first, and insurance charges apart (never allocated)."""
    from payalloc.money import format_cents

    # What the service was (a payment's note often names it: "the evaluation only"), and its event.
    charge_columns = [
        output.Column("Date", "service_date"), output.Column("Charge", "charge_id"),
        output.Column("Code", "service_code"), output.Column("Description", "description", text=True),
        output.Column("Payer", "payer"), output.Column("Amount", "amount", numeric=True),
        output.Column("Balance", "balance", numeric=True),
    ]
    if any(c.event_key for c in d.open_charges):
        charge_columns.append(output.Column("Event", "event_id", optional=True))

    def row(c: ChargeRow) -> dict[str, str]:
        return {"service_date": c.service_date, "charge_id": c.key, "service_code": c.service_code or "",
                "description": c.description or "", "payer": c.payer, "amount": format_cents(c.amount_cents),
                "balance": format_cents(c.balance_cents), "event_id": c.event_key or ""}

    output.table(
        charge_columns,
        [row(c) for c in d.open_charges],
        title="Open self-pay charges (oldest first)", empty="no open self-pay charges", section=True,
    )
    if d.insurance_charges:
        output.table(
            [*charge_columns[:6], output.Column("Allocatable", "allocatable")],
            [{**row(c), "allocatable": "no (insurance)"} for c in d.insurance_charges],
            title="Insurance charges (not allocatable)",
        )


def client_list(
    name: Annotated[str | None, typer.Option("--name", help="Only clients whose name (or responsible party)"
                                             " contains this text, in any case.")] = None,
    json_out: JsonOpt = False,
    csv_out: CsvOpt = False,
    limit: LimitOpt = None,
) -> None:
    """List clients (--name finds one by name).

    Example: payalloc client list --name okafor
    """
    one_format(json_out, csv_out)
    from payalloc.services.listings import list_clients

    columns = [Column("Client", "client_id"), Column("Name", "name", text=True),
               Column("Responsible party", "responsible_party", text=True),
               Column("Payments", "payments", numeric=True), Column("Charges", "charges", numeric=True)]
    with STATE.ledger() as conn, list_clients(conn, name=name) as listing:
        output.listing(listing, columns, json_out, csv_out, limit, noun="client",
                       empty="no clients in the ledger" if name is None else "no client's name contains that text")


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    groups["client"].command("list", short_help="List clients; --name finds one by name.")(client_list)
    groups["client"].command("show", short_help="One client: figures, payments, open charges.")(show)
