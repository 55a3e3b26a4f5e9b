"""`payalloc import KIND FILE`: CSV exports from the EHR, billing system and bank."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from payalloc.cli import output
from payalloc.cli.common import DryRunOpt, JsonOpt
from payalloc.cli.state import STATE
from payalloc.csv_text import close_source, open_source, source_name
from payalloc.dates import utc_now

if TYPE_CHECKING:
    from payalloc.services.imports import ImportSummary


class Kind(StrEnum):
    clients = "clients"
    events = "events"
    charges = "charges"
    payments = "payments"


def import_file(
    kind: Annotated[Kind, typer.Argument(help="What the file holds: clients, events, charges or payments.", metavar="KIND")],
    file: Annotated[str, typer.Argument(help="CSV file (UTF-8, header row), or - for standard input.", metavar="FILE")],
    dry_run: DryRunOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Import a CSV file: all of it, or nothing if any row is invalid.

    Re-importing is safe: identical rows count as unchanged. Clients and events may be
    updated (name, responsible party, event scheduled -> done); a known charge or payment
    with different content is refused.

    With --json, one object on stdout either way: the counts, or "refused": true with
    each problem's line, column and reason (exit 3).

    Example: payalloc import charges exports/charges-2026-11.csv --dry-run
    """
    if json_out:
        STATE.json_refusal = {"kind": kind.value, "file": source_name(file), "dry_run": dry_run}
    summary = _import(kind.value, file, dry_run)
    for warning in summary.warnings:
        output.warn(warning)
    if json_out:
        output.emit_json(summary.as_dict())
        return
    verb = "would import" if dry_run else "imported"
    output.line(
        f"{summary.file}: {verb} {summary.inserted} new, {summary.updated} updated, {summary.unchanged} unchanged "
        f"{kind.value}" + (" (dry run: nothing written)" if dry_run else "")
    )


def _import(kind: str, file: str, dry_run: bool) -> ImportSummary:
    from payalloc.services.imports import import_csv

    with STATE.ledger() as conn:
        raw, name, size = open_source(file)
        try:
            with output.progress(size or 0, f"importing {kind}") as bar:
                return import_csv(
                    conn, kind, raw, name, now=utc_now(), staff=STATE.staff, dry_run=dry_run,
                    on_progress=bar.advance_to,
                )
        finally:
            close_source(raw)


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    app.command("import", short_help="Import a CSV file: all of it, or nothing.")(import_file)
