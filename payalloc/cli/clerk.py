"""`payalloc unallocated|apply|unapply|reallocate|audit`: the clerk's day at the terminal (rules 3, 5, 7)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from payalloc.cli import output
from payalloc.cli.common import (
    REVERSED_IN_GL,
    CsvOpt,
    JsonOpt,
    LimitOpt,
    ReasonOpt,
    one_format,
    rows_wanted,
    whole_number,
)
from payalloc.cli.state import STATE
from payalloc.errors import UsageError

if TYPE_CHECKING:
    from payalloc.services.clerk import Applied, UnapplyResult

RemittanceArg = Annotated[
    int, typer.Argument(help="The remittance id (a number).", show_default=False, metavar="REMITTANCE_ID",
                        parser=whole_number("a remittance id"))
]
PairsArg = Annotated[
    list[str] | None,
    typer.Argument(metavar="CHARGE_ID=AMOUNT...", help="Charges and the amount to allocate to each.",
                   show_default=False),
]


def unallocated(
    all_: Annotated[bool, typer.Option("--all", help="Also clients whose payments are pending.")] = False,
    needs_clerk: Annotated[
        bool, typer.Option("--needs-clerk", help="Only clients with specific payments to allocate by hand.")
    ] = False,
    json_out: JsonOpt = False,
    csv_out: CsvOpt = False,
    limit: LimitOpt = None,
) -> None:
    """Clients with ready money not fully allocated, most urgent first: the clerk's work list.
    The table's totals are of every client listed, shown or not.

    Example: payalloc unallocated --needs-clerk
    """
    one_format(json_out, csv_out)
    from payalloc.dates import utc_now
    from payalloc.money import format_cents
    from payalloc.services import views

    with STATE.ledger() as conn:
        entries = views.unallocated(conn, now=utc_now(), include_pending=all_, needs_clerk_only=needs_clerk)
    wanted = rows_wanted(limit, json_out or csv_out)
    if json_out:
        output.emit_json_rows(e.as_json() for e in entries[:wanted])
        return
    # The same columns with or without --all (as --json): a script reading them must not break.
    fields = ["client_id", "name", "total_payments", "unallocated", "charges_balance", "needs_clerk", "days_waiting",
              "pending"]
    if csv_out:
        output.emit_csv(fields, (e.as_json() for e in entries[:wanted]),
                        numeric=["total_payments", "unallocated", "charges_balance", "pending", "days_waiting"])
        return
    # Short headers: on an 80-column terminal the name wraps, the figures stay on one line.
    columns = [
        output.Column("Client", "client_id"), output.Column("Name", "name", text=True),
        output.Column("Payments", "total_payments", numeric=True),
        output.Column("Unallocated", "unallocated", numeric=True),
        output.Column("Self-pay", "charges_balance", numeric=True),
        output.Column("Clerk", "needs_clerk"), output.Column("Days", "days_waiting", numeric=True),
    ]
    # "Payments" counts pending checks too: whenever one is listed, its column says how much.
    if all_ or any(e.pending_cents for e in entries):
        columns.append(output.Column("Pending", "pending", numeric=True))
    shown = entries[:wanted]
    output.table(
        columns,
        [{"client_id": e.client_key, "name": e.name, "total_payments": format_cents(e.total_cents),
          "unallocated": format_cents(e.unallocated_cents), "charges_balance": format_cents(e.charges_balance_cents),
          "needs_clerk": "yes" if e.needs_clerk else "", "pending": format_cents(e.pending_cents),
          "days_waiting": "" if e.days_waiting is None else e.days_waiting} for e in shown],
        title=output.limited(len(shown), len(entries), noun="client"),  # the Total row counts them
        footer={"client_id": "Total", "name": output.counted(len(entries), "client"),
                "total_payments": format_cents(sum(e.total_cents for e in entries)),
                "unallocated": format_cents(sum(e.unallocated_cents for e in entries)),
                "charges_balance": format_cents(sum(e.charges_balance_cents for e in entries)),
                "needs_clerk": f"{sum(e.needs_clerk for e in entries):,}",
                "pending": format_cents(sum(e.pending_cents for e in entries))},
        empty="no client has unallocated money",
    )


def _applied_json(a: Applied) -> dict[str, Any]:
    from payalloc.money import plain_cents

    return {
        "id": a.remittance_id, "payment_id": a.payment_key, "charge_id": a.charge_key, "client_id": a.client_key,
        "amount": plain_cents(a.amount_cents), "status": "ready", "source": "manual", "staff": a.staff,
        "created_at": a.created_at, "payment_unapplied": plain_cents(a.payment_unapplied_cents),
        "charge_balance": plain_cents(a.charge_balance_cents),
    }


def _applied_table(applied: list[Applied]) -> None:
    from payalloc.money import format_cents

    output.table(
        [output.Column("Remittance", "id"), output.Column("Payment", "payment_id"),
         output.Column("Charge", "charge_id"), output.Column("Amount", "amount", numeric=True),
         output.Column("Payment unapplied", "payment_unapplied", numeric=True),
         output.Column("Charge balance", "charge_balance", numeric=True)],
        [{"id": a.remittance_id, "payment_id": a.payment_key, "charge_id": a.charge_key,
          "amount": format_cents(a.amount_cents), "payment_unapplied": format_cents(a.payment_unapplied_cents),
          "charge_balance": format_cents(a.charge_balance_cents)} for a in applied],
        title="Applied",
    )


def apply(
    payment_id: Annotated[str | None, typer.Argument(help="The payment to allocate.", show_default=False,
                                                           metavar="PAYMENT_ID")] = None,
    pairs: PairsArg = None,
    file: Annotated[
        str | None, typer.Option("--file", help="CSV with payment_id,charge_id,amount rows (- = stdin).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Allocate specific payments to charges by hand: the whole set, or nothing with every reason.

    Give each charge once (a charge given twice is refused). A --file has a header row
    payment_id,charge_id,amount and may allocate several payments; its rows for the same payment
    and charge are added up into one remittance, with a warning naming the lines.

    Example: payalloc apply P-3004 CH-2013=40.00 CH-2015=20.00

    Example: payalloc apply --file allocations.csv
    """
    # One style for the three: "error: ..." and exit 2, as every other usage error of payalloc.
    if file is not None and (payment_id is not None or pairs):
        raise UsageError("give either PAYMENT_ID CHARGE_ID=AMOUNT... or --file F, not both")
    if file is None and payment_id is None:
        raise UsageError("give PAYMENT_ID CHARGE_ID=AMOUNT... or --file F (see payalloc apply --help)")
    if file is None and not pairs:
        raise UsageError("give CHARGE_ID=AMOUNT pairs after the payment id, or --file F")
    from payalloc.dates import utc_now
    from payalloc.money import format_cents
    from payalloc.services import clerk

    with STATE.ledger() as conn:
        if file is not None:
            result = clerk.apply_file(conn, file, now=utc_now(), staff=STATE.staff)
        else:
            assert payment_id is not None
            result = clerk.apply_pairs(conn, payment_id, pairs or [], now=utc_now(), staff=STATE.staff)
    if result.ignored_columns:
        output.warn(f"ignored unknown column{'s' if len(result.ignored_columns) != 1 else ''}: "
                    + ", ".join(result.ignored_columns))
    for a in result.applied:
        if len(a.wheres) > 1:  # only a file's rows are added up; on the command line a repeat is refused
            output.warn(f"{', '.join(a.wheres[:-1])} and {a.wheres[-1]} each allocate payment {a.payment_key} to"
                        f" charge {a.charge_key}: added up into remittance {a.remittance_id}"
                        f" ({format_cents(a.amount_cents)})")
    if json_out:
        output.emit_json([_applied_json(a) for a in result.applied])
        return
    _applied_table(result.applied)
    count = len(result.applied)
    output.message(f"applied {format_cents(result.total_cents)} in {count} remittance{'s' if count != 1 else ''}")


def _unapply_message(r: UnapplyResult) -> None:
    from payalloc.money import format_cents

    rem = r.remittance
    text = (f"reversed remittance {rem.id} ({format_cents(rem.amount_cents)} of payment {rem.payment_key}"
            f" to charge {rem.charge_key}); {format_cents(r.unapplied_cents)} is unapplied again")
    if r.kept_id is not None:
        text += f"; {format_cents(r.kept_cents)} stays applied as remittance {r.kept_id}"
    if rem.status == "posted":  # rule 5: history is not edited, a reversing entry is added
        text += f"; it was posted, {REVERSED_IN_GL}"
    output.message(text)
    if r.payment_apply_to != "specific":
        output.warn(
            f"payment {rem.payment_key} applies to {r.payment_apply_to}: the next run-job will apply this money"
            f" again; to keep it for the clerk: payalloc payment mode {rem.payment_key} specific"
        )


def _unapply_json(r: UnapplyResult) -> dict[str, Any]:
    from payalloc.money import plain_cents

    return {"reversed_id": r.remittance.id, "payment_id": r.remittance.payment_key,
            "charge_id": r.remittance.charge_key, "unapplied": plain_cents(r.unapplied_cents),
            "kept_id": r.kept_id, "kept": plain_cents(r.kept_cents), "was_status": r.remittance.status}


def unapply(
    remittance_id: RemittanceArg,
    reason: ReasonOpt,
    amount: Annotated[
        str | None, typer.Option("--amount", help="Unapply only this much; the rest stays applied (payments applied by hand only: specific).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Reverse a remittance (or part of it): the money is unapplied again. Posted ones are reversed in the GL.

    Example: payalloc unapply 26 --reason "applied to the wrong session" --amount 20.00
    """
    from payalloc.dates import utc_now
    from payalloc.services import clerk

    with STATE.ledger() as conn:
        result = clerk.unapply(conn, remittance_id, reason=reason, amount=amount, now=utc_now(), staff=STATE.staff)
    if json_out:
        output.emit_json(_unapply_json(result))
        return
    _unapply_message(result)


def reallocate(
    remittance_id: RemittanceArg,
    pairs: Annotated[
        list[str],
        typer.Argument(metavar="CHARGE_ID=AMOUNT...", help="Where the payment's money goes instead.",
                       show_default=False),
    ],
    reason: ReasonOpt,
    json_out: JsonOpt = False,
) -> None:
    """Unapply a remittance and allocate its payment to other charges, in one transaction.

    Example: payalloc reallocate 27 CH-2015=40.00 --reason "belongs to the 09-30 session"
    """
    from payalloc.dates import utc_now
    from payalloc.services import clerk

    with STATE.ledger() as conn:
        result = clerk.reallocate(conn, remittance_id, pairs, reason=reason, now=utc_now(), staff=STATE.staff)
    if json_out:
        output.emit_json({"unapplied": _unapply_json(result.unapplied),
                          "applied": [_applied_json(a) for a in result.applied]})
        return
    _applied_table(result.applied)
    from payalloc.money import format_cents

    # Not _unapply_message: the money is not "unapplied again", it went to the charges just listed.
    rem, count = result.unapplied.remittance, len(result.applied)
    total = sum(a.amount_cents for a in result.applied)
    left = result.applied[-1].payment_unapplied_cents  # the figures after the whole transaction
    output.message(
        f"reversed remittance {rem.id} ({format_cents(rem.amount_cents)} of payment {rem.payment_key}"
        f" to charge {rem.charge_key}) and applied {format_cents(total)} in {count}"
        f" remittance{'s' if count != 1 else ''}; payment {rem.payment_key} has {format_cents(left)} unapplied"
    )


def audit(
    client: Annotated[str | None, typer.Option("--client", help="Only this client's actions.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only from this date, YYYY-MM-DD.")] = None,
    json_out: JsonOpt = False,
    csv_out: CsvOpt = False,
    limit: LimitOpt = None,
) -> None:
    """The audit trail: every manual action with staff, time (UTC), ids and reason, oldest first.
    A table shows the most recent entries; --limit N the last N in every format.

    Example: payalloc audit --client C-1003 --since 2026-11-01
    """
    one_format(json_out, csv_out)
    from payalloc.services import views

    with STATE.ledger() as conn:
        entries = views.audit_trail(conn, client=client, since=since)
    wanted = rows_wanted(limit, json_out or csv_out)
    total = len(entries)
    rows = [views.audit_json(a) for a in output.cut(entries, wanted, "last")[0]]
    if json_out:
        output.emit_json_rows(rows)
        return
    fields = ["id", "at", "staff", "action", "client_id", "payment_id", "charge_id", "event_id", "remittance_id",
              "job_run_id", "reason", "detail"]
    if csv_out:
        output.emit_csv(fields, [{**r, "detail": "" if r["detail"] is None else json.dumps(r["detail"], sort_keys=True)}
                                 for r in rows])
        return
    output.table(
        [output.Column("At", "at"), output.Column("Staff", "staff", text=True), output.Column("Action", "action"),
         output.Column("Client", "client_id"), output.Column("Payment", "payment_id"),
         output.Column("Charge", "charge_id"), output.Column("Event", "event_id"),
         output.Column("Remittance", "remittance_id"), output.Column("Reason", "reason", text=True), output.Column("Detail", "detail", text=True)],
        [{**r, "staff": r["staff"] or "run-job", "detail": _readable(r["detail"] or {})} for r in rows],
        title=output.titled(None, len(rows), total, noun="action", end="last"),
        empty="no audit entries",
    )


def _readable(detail: dict[str, Any]) -> str:
    """An audit detail for a person: one `key: value` per line (--json and --csv keep the object)."""
    def shown(value: Any) -> str:
        if isinstance(value, dict):
            return " ".join(f"{k.replace('_', ' ')} {shown(v)}" for k, v in value.items())
        if isinstance(value, list):
            return ", ".join(map(shown, value)) or "none"
        # a line break in a value (a file name) must not read as a line of its own
        return "none" if value is None else str(value).replace("\n", "\ufffd")

    return "\n".join(f"{key.replace('_', ' ')}: {shown(value)}" for key, value in detail.items())


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    app.command("unallocated", short_help="Clients with money waiting, most urgent first.")(unallocated)
    app.command("apply", short_help="Allocate a specific payment to charges, by hand.")(apply)
    app.command("unapply", short_help="Reverse a remittance, or part of it.")(unapply)
    app.command("reallocate", short_help="Move a remittance's money to other charges.")(reallocate)
    app.command("audit", short_help="The audit trail: who did what, when, and why.")(audit)
