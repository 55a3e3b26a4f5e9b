"""`client list`, `payment list`, `remittances list`: table, --json or --csv."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from payalloc.cli import output
from payalloc.cli.common import ApplyTo, CsvOpt, JsonOpt, LimitOpt, one_format
from payalloc.cli.output import Column
from payalloc.cli.state import STATE


class RemittanceStatus(StrEnum):
    ready = "ready"
    posted = "posted"
    reversed = "reversed"


class PaymentStatus(StrEnum):
    ready = "ready"
    pending = "pending"
    void = "void"


ClientOpt = Annotated[str | None, typer.Option("--client", help="Only this client (client_id).")]


def client_list(json_out: JsonOpt = False, csv_out: CsvOpt = False, limit: LimitOpt = None) -> None:
    """List clients.

    Example: payalloc client list --csv > clients.csv
    """
    one_format(json_out, csv_out)
    from payalloc.services.listings import list_clients

    columns = [Column("Client", "client_id"), Column("Name", "name", text=True),
               Column("Responsible party", "responsible_party", text=True),
               Column("Payments", "payments", numeric=True), Column("Charges", "charges", numeric=True)]
    with STATE.ledger() as conn, list_clients(conn) as listing:
        output.listing(listing, columns, json_out, csv_out, limit, noun="client", empty="no clients in the ledger")


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


def remittances_list(
    status: Annotated[RemittanceStatus | None, typer.Option("--status", help="Only this status.")] = None,
    client: ClientOpt = None,
    payment: Annotated[str | None, typer.Option("--payment", help="Only this payment (payment_id).")] = None,
    json_out: JsonOpt = False,
    csv_out: CsvOpt = False,
    limit: LimitOpt = None,
) -> None:
    """List remittances (allocations of a payment to a charge), oldest first. A table shows the
    most recent (--limit N: the last N in every format).

    Example: payalloc remittances list --status ready --json
    """
    one_format(json_out, csv_out)
    from payalloc.services.listings import list_remittances

    columns = [Column("Remittance", "id"), Column("Payment", "payment_id"), Column("Charge", "charge_id"),
               Column("Client", "client_id"), Column("Amount", "amount", numeric=True), Column("Status", "status"),
               Column("Source", "source"), Column("Rule", "rule"), Column("Staff", "staff", text=True),
               Column("Created (UTC)", "created_at", optional=True)]
    with STATE.ledger() as conn, list_remittances(conn, client=client, payment=payment,
                                                  status=status and status.value) as listing:
        output.listing(listing, columns, json_out, csv_out, limit, noun="remittance", empty="no remittances match",
                       end="last")


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    groups["client"].command("list")(client_list)
    groups["payment"].command("list")(payment_list)
    groups["remittances"].command("list")(remittances_list)
