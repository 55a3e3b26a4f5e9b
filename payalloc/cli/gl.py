"""`payalloc gl map|show|export`: the general-ledger mappings and the posted journal (rule 6)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from payalloc.cli import output
from payalloc.cli.common import CsvOpt, JsonOpt, LimitOpt, one_format
from payalloc.cli.state import STATE
from payalloc.errors import UsageError


def map_account(
    key: Annotated[str, typer.Argument(help="unapplied_default or self_pay_ar.", show_default=False, metavar="KEY")],
    account: Annotated[str, typer.Argument(help="The account in your general ledger.", show_default=False, metavar="ACCOUNT")],
) -> None:
    """Set the account of a GL mapping. Posting needs both unapplied_default (the liability for
    unapplied client payments) and self_pay_ar (the self-pay receivable).

    Example: payalloc gl map self_pay_ar 1210-self-pay-receivable
    """
    from payalloc.dates import utc_now
    from payalloc.services import gl

    with STATE.ledger() as conn:
        previous = gl.map_account(conn, key, account, now=utc_now(), staff=STATE.staff)
        status = gl.show(conn)
    was = "" if previous is None else " (unchanged)" if previous == account.strip() else f" (was {previous})"
    output.message(f"GL mapping {key} is account {account.strip()}{was}")
    if previous not in (None, account.strip()) and status.journal_lines:
        output.warn(f"the {status.journal_lines:,} journal lines already posted keep account {previous} (and so"
                    f" do their reversals); later postings use {account.strip()}")
    if status.posting_ready:
        output.message("posting is ready: run-job posts ready remittances")
    else:
        output.message(f"posting still needs: {', '.join(status.missing_mappings)}")


def show(json_out: JsonOpt = False, csv_out: CsvOpt = False) -> None:
    """Show the GL mappings, whether posting is ready, and the journal's totals. --csv lists the
    mappings alone (key, account, updated_at, updated_by; a blank account is not configured).

    Example: payalloc gl show --json
    """
    one_format(json_out, csv_out)
    from payalloc.money import format_cents, plain_cents
    from payalloc.services import gl

    with STATE.ledger() as conn:
        status = gl.show(conn)
    if json_out:
        output.emit_json({
            "mappings": status.mappings, "posting_ready": status.posting_ready,
            "missing_mappings": status.missing_mappings, "ready_remittances": status.ready_remittances,
            "ready_amount": plain_cents(status.ready_amount_cents), "journal_lines": status.journal_lines,
            "journal_debit": plain_cents(status.journal_debit_cents),
            "journal_credit": plain_cents(status.journal_credit_cents), "balanced": status.balanced,
        })
        return
    if csv_out:
        output.emit_csv(["key", "account", "updated_at", "updated_by"], status.mappings)
        return
    output.table(
        [output.Column("Mapping", "key"), output.Column("Account", "account"),
         output.Column("Updated", "updated_at"), output.Column("By", "updated_by", text=True)],
        [{**m, "account": m["account"] or "(not configured)"} for m in status.mappings],
        title="GL mappings",
    )
    output.fields([
        ("Posting", "ready" if status.posting_ready else "not ready: missing " + ", ".join(status.missing_mappings)),
        ("Ready remittances", f"{status.ready_remittances:,} ({format_cents(status.ready_amount_cents)})"),
        ("Journal lines", f"{status.journal_lines:,}"),
        ("Journal debit", format_cents(status.journal_debit_cents)),
        ("Journal credit", format_cents(status.journal_credit_cents)),
        ("Balanced", "yes" if status.balanced else "NO"),
    ])


def export(
    since: Annotated[
        str | None, typer.Option("--since", help="Only batches created on or after this date (YYYY-MM-DD).")
    ] = None,
    json_out: JsonOpt = False,
    csv_out: CsvOpt = False,
    output_file: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file (owner-only, 0600) instead of stdout; needs --csv or"
                     " --json, and refuses an existing file unless --force."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the --output file if it exists.")] = False,
    limit: LimitOpt = None,
) -> None:
    """Export the posted journal (posting and reversing lines) for the accounting system: a
    table, or --csv / --json, on stdout or (with --csv or --json) into the --output file. A table
    shows the most recent lines (--limit N: the last N in every format).

    Example: payalloc gl export --since 2026-11-01 --csv --output journal-2026-11.csv
    """
    one_format(json_out, csv_out)
    if output_file is not None and not (json_out or csv_out):
        raise UsageError("--output needs --csv or --json")
    from payalloc.services import gl

    # On a narrow terminal the entry, its remittance, payment, account and amounts stay.
    columns = [
        output.Column("Line", "line_id", optional=True), output.Column("Batch", "batch_id", optional=True),
        output.Column("Created", "batch_created_at", optional=True), output.Column("Entry", "entry"),
        output.Column("Remittance", "remittance_id"), output.Column("Payment", "payment_id"),
        output.Column("Charge", "charge_id", optional=True), output.Column("Client", "client_id", optional=True),
        output.Column("Account", "account"), output.Column("Debit", "debit", numeric=True),
        output.Column("Credit", "credit", numeric=True)]
    with STATE.ledger() as conn, gl.export(conn, since) as journal, output.to_file(output_file, replace=force):
        empty = "the journal is empty" if since is None else f"no journal lines in batches since {since.strip()}"
        output.listing(journal, columns, json_out, csv_out, limit, noun="line", empty=empty,
                       title="Posted journal", end="last")


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    group = groups["gl"]
    group.command("map", short_help="Set the GL account of a mapping.")(map_account)
    group.command("show", short_help="The GL mappings, and the journal's totals.")(show)
    group.command("export", short_help="Export the posted journal lines.")(export)
