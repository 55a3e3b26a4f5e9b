"""`payalloc check` and `payalloc backup`: the ledger's integrity."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from payalloc.cli import output
from payalloc.cli.common import CsvOpt, JsonOpt, one_format
from payalloc.cli.state import STATE
from payalloc.errors import CheckFailed

_COLUMNS = (
    output.Column("Code", "code"),
    output.Column("Ids", "ids"),
    output.Column("Problem", "message", text=True),
)


def _counts_line(counts: dict[str, int]) -> str:
    kinds = ("client", "payment", "charge", "remittance")
    return ", ".join(output.counted(counts[f"{kind}s"], kind) for kind in kinds) + " checked"


def _ids_text(ids: dict[str, object]) -> str:
    shown = [f"{k}={v}" for k, v in ids.items() if k.endswith("_id") or k in ("table_name", "column_name")]
    return " ".join(shown)


def check(json_out: JsonOpt = False, csv_out: CsvOpt = False) -> None:
    """Verify every invariant of the ledger; exit 5 listing each violation (code, ids, problem).
    --csv lists them with the table's columns (code, ids, message), the header alone when none.

    Example: payalloc --db practice.db check --json
    """
    one_format(json_out, csv_out)
    from payalloc.services.check import check_ledger

    with STATE.ledger() as conn:
        report = check_ledger(conn)
    output.warn_if_shared(STATE.db)
    rows = [{"code": v.code, "ids": _ids_text(v.ids), "message": v.message} for v in report.violations]
    if json_out:
        output.emit_json(report.as_json())
    elif csv_out:
        output.emit_csv(["code", "ids", "message"], rows)
    elif rows:
        output.table(_COLUMNS, rows, title=output.counted(len(rows), "violation"))
    if report.violations:
        codes = sorted({v.code for v in report.violations})
        raise CheckFailed(
            f"check found {output.counted(len(report.violations), 'violation')} in ledger {STATE.db}:"
            f" {', '.join(codes)}"
        )
    output.message(f"ledger OK: {_counts_line(report.counts)}")


def backup(
    dest: Annotated[Path, typer.Argument(help="File to write the copy to (created owner-only, 0600).", metavar="DEST")],
    force: Annotated[bool, typer.Option("--force", help="Replace DEST if it exists.")] = False,
) -> None:
    """Copy the ledger to DEST, consistently even while others write, then check the copy.

    Example: payalloc --db practice.db backup /backups/practice-2026-11-23.db
    """
    from payalloc.services.backup import backup as run_backup

    result = run_backup(STATE.db, dest, force=force)
    output.message(f"backed up ledger {STATE.db} to {result.dest} ({result.pages} pages)")
    if result.report.violations:
        codes = sorted({v.code for v in result.report.violations})
        raise CheckFailed(
            f"the backup {result.dest} was written, but check finds "
            f"{output.counted(len(result.report.violations), 'violation')} in it (as in the ledger):"
            f" {', '.join(codes)}; run payalloc check"
        )
    output.message(f"backup OK: {_counts_line(result.report.counts)}")


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    app.command("check", short_help="Verify every invariant of the ledger.")(check)
    app.command("backup", short_help="Copy the ledger safely, even while others write.")(backup)
