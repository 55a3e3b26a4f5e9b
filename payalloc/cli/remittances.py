"""`payalloc remittances list`: table, --json or --csv."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from payalloc.cli import output
from payalloc.cli.common import ClientOpt, CsvOpt, JsonOpt, LimitOpt, one_format
from payalloc.cli.output import Column
from payalloc.cli.state import STATE


class RemittanceStatus(StrEnum):
    ready = "ready"
    posted = "posted"
    reversed = "reversed"


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
    groups["remittances"].command("list", short_help="List remittances (payments allocated to charges).")(remittances_list)
