"""`payalloc event add|list|done|delete`: appointments and the payments attached to them (rule 4)."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated

import typer

from payalloc.cli import output
from payalloc.cli.common import CsvOpt, JsonOpt, LimitOpt, confirm, one_format
from payalloc.cli.state import STATE
from payalloc.errors import InputError


class EventStatus(StrEnum):
    scheduled = "scheduled"
    done = "done"
    deleted = "deleted"


EventArg = Annotated[str, typer.Argument(help="The event id.", show_default=False, metavar="EVENT_ID")]


def _stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def add(
    client: Annotated[str, typer.Option("--client", help="The client's id.", show_default=False)],
    date: Annotated[str, typer.Option("--date", help="Scheduled date, YYYY-MM-DD.", show_default=False)],
    event_id: Annotated[
        str | None, typer.Option("--id", help="The event id (default: generated, EV-000123).")
    ] = None,
) -> None:
    """Schedule an event for a client and print its id.

    Example: payalloc event add --client C-1003 --date 2026-12-01 --id E-77
    """
    from payalloc.dates import utc_now
    from payalloc.services import events

    with STATE.ledger() as conn:
        key = events.add_event(conn, client_key=client, date=date, event_key=event_id, now=utc_now(),
                               staff=STATE.staff)
    output.line(key)


def list_events(
    client: Annotated[str | None, typer.Option("--client", help="Only this client's events.")] = None,
    status: Annotated[EventStatus | None, typer.Option("--status", help="Only events with this status.")] = None,
    json_out: JsonOpt = False,
    csv_out: CsvOpt = False,
    limit: LimitOpt = None,
) -> None:
    """List events by date, with the payments still attached to them.

    Example: payalloc event list --client C-1003 --status scheduled
    """
    one_format(json_out, csv_out)
    from payalloc.services import events

    columns = [output.Column("Event", "event_id"), output.Column("Client", "client_id"),
               output.Column("Date", "scheduled_date"), output.Column("Status", "status"),
               output.Column("Charges", "charges", numeric=True),
               output.Column("Attached payments", "attached_payments", numeric=True),
               output.Column("Unapplied", "attached_unapplied", numeric=True)]
    with STATE.ledger() as conn, events.list_events(conn, client_key=client, status=status and status.value) as rows:
        output.listing(rows, columns, json_out, csv_out, limit, noun="event", empty="no events")


def done(event_id: EventArg) -> None:
    """Mark an event done. At the next run-job its attached payments are applied to its charges,
    and what is left of them becomes apply-to specific, for the clerk.

    Example: payalloc event done E-77
    """
    from payalloc.dates import utc_now
    from payalloc.services import events

    with STATE.ledger() as conn:
        change = events.mark_done(conn, event_id, now=utc_now(), staff=STATE.staff)
    if not change.changed:
        output.message(f"event {change.event_key} was already done; nothing changed")
        return
    msg = f"event {change.event_key} is done"
    if change.attached:
        n = len(change.attached)
        msg += (f"; {n} attached payment{'s' if n != 1 else ''} will be applied to its charges at the next"
                " run-job, and what is left becomes apply-to specific")
    output.message(msg)
    if change.attached and change.open_balance_cents == 0:  # rule 4 would send it all to the clerk
        from payalloc.money import format_cents

        waiting = format_cents(sum(p.unapplied_cents for p in change.attached))
        output.warn(f"event {change.event_key} has no open self-pay charge in the ledger: at the next run-job"
                    f" its attached payments ({waiting}) become apply-to specific, for the clerk; if its charges"
                    " are still to come from the billing system, import them before the run")


def delete(
    event_id: EventArg,
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm: attached payments become apply-to specific.")
    ] = False,
) -> None:
    """Delete an event (its status becomes deleted; nothing is removed). Payments still attached
    become apply-to specific; with payments attached this asks for confirmation, or needs --yes.

    Example: payalloc event delete E-77 --yes
    """
    from payalloc.dates import utc_now
    from payalloc.money import format_cents
    from payalloc.services import events

    with STATE.ledger() as conn:
        confirmed = yes
        shown: list[str] | None = None
        if not yes and _stdin_is_terminal():
            attached = events.attached_payments(conn, event_id)
            shown = [p.key for p in attached]
            if attached:
                for p in attached:
                    output.warn(
                        f"payment {p.key} ({p.status}, {format_cents(p.unapplied_cents)} unapplied)"
                        f" is attached to event {event_id.strip()}"
                    )
                which = "this payment" if len(attached) == 1 else f"these {len(attached)} payments"
                if not confirm(f"Delete the event and make {which} apply to specific charges?"):
                    raise InputError(f"event {event_id.strip()} was not deleted; nothing was changed")
                confirmed = True
        change = events.delete_event(conn, event_id, now=utc_now(), staff=STATE.staff, confirmed=confirmed,
                                     shown=shown)
    if not change.changed:
        output.message(f"event {change.event_key} was already deleted; nothing changed")
        return
    msg = f"event {change.event_key} is deleted"
    if change.converted:
        if len(change.converted) == 1:
            msg += f"; payment {change.converted[0]} now applies to specific charges"
        else:
            msg += f"; payments now apply to specific charges: {', '.join(change.converted)}"
    output.message(msg)


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    group = groups["event"]
    group.command("add", short_help="Schedule an event (appointment) for a client.")(add)
    group.command("list", short_help="List events and the payments attached to them.")(list_events)
    group.command("done", short_help="Mark an event done: run-job applies its payments.")(done)
    group.command("delete", short_help="Delete an event: its payments go to the clerk.")(delete)
