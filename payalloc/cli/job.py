"""`payalloc run-job` (the APPLY_CLIENT_PAYMENTS job) and `payalloc jobs` (its runs)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from payalloc.cli import output
from payalloc.cli.common import CsvOpt, DryRunOpt, JsonOpt, LimitOpt, exclusive, one_format, rows_wanted
from payalloc.cli.state import STATE

if TYPE_CHECKING:
    from payalloc.services.job import JobResult

QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success (for cron).")]


def run_job(dry_run: DryRunOpt = False, json_out: JsonOpt = False, quiet: QuietOpt = False) -> None:
    """Apply event payments (rule 4), then oldest payments (rule 2), then post ready remittances
    to the general ledger (rule 6). Safe to re-run; a second run while one runs exits 4.

    With --json, one object on stdout either way: the counts, or "refused": true with the error
    (exit 3 or 4).

    Example: payalloc --db practice.db run-job -q
    """
    exclusive(("--json", json_out), ("--quiet", quiet))
    if json_out:
        STATE.json_refusal = {"dry_run": dry_run}
    result = _run(dry_run)
    if not json_out:  # cron mails stderr even with -q; --json has interrupted_runs
        for run_id, started_at in result.interrupted:
            output.warn(f"run {run_id} (started {started_at}) was interrupted; this run carried on its work")
    for warning in result.warnings:
        output.warn(warning)
    data: dict[str, Any] = {
        "run_id": result.run_id,
        "dry_run": result.dry_run,
        "refused": False,
        **result.counts(),
        "posting_ready": not result.missing_mappings,
        "missing_mappings": result.missing_mappings,
        "interrupted_runs": result.interrupted_runs,
        "warnings": result.warnings,
    }
    if dry_run:
        from payalloc.money import plain_cents
        from payalloc.services.job import PlannedConversion, PlannedRemittance

        data["remittances"] = list(output.records(PlannedRemittance._fields, result.planned_remittances, plain_cents))
        data["conversions"] = list(output.records(PlannedConversion._fields, result.planned_conversions, plain_cents))
    if json_out:
        output.emit_json(data)
        return
    if quiet:
        return
    if dry_run:
        _show_plan(result)
    output.line(_summary(result))


def _run(dry_run: bool) -> JobResult:
    from payalloc.dates import utc_now
    from payalloc.services import job

    with STATE.ledger() as conn:
        return job.run_job(conn, STATE.db, utc_now(), dry_run=dry_run)


def _summary(result: JobResult) -> str:
    applied = (
        f"{result.remittances_created:,} remittance{'s' if result.remittances_created != 1 else ''}"
        f" ({_money(result.amount_applied_cents)}) for {result.clients:,}"
        f" client{'s' if result.clients != 1 else ''}"
    )
    n = result.event_payments_converted
    converted = f"{n:,} event payment{'s' if n != 1 else ''}"
    if result.missing_mappings:
        missing = result.missing_mappings
        posted = f"posting skipped (GL mapping{'s' if len(missing) > 1 else ''} {' and '.join(missing)} missing)"
    else:
        posted = f"{result.remittances_posted:,} posted"
    if result.dry_run:
        posted = "nothing posted" if result.missing_mappings else (
            f"would post {result.remittances_posted:,} remittance{'s' if result.remittances_posted != 1 else ''}"
            f" ({_money(result.amount_posted_cents)}) to the GL")
        return f"dry run (nothing written): would create {applied}; {converted} to specific; {posted}"
    return f"run {result.run_id}: {applied}; {converted} to specific; {posted}"


def _money(cents: int) -> str:
    from payalloc.money import format_cents

    return format_cents(cents)


PLAN_ROWS_SHOWN = 200


def _show_plan(result: JobResult) -> None:
    from payalloc.money import format_cents
    from payalloc.services.job import PlannedConversion, PlannedRemittance

    planned = result.planned_remittances
    output.table(
        [output.Column("Payment", "payment_id"), output.Column("Charge", "charge_id"),
         output.Column("Client", "client_id"), output.Column("Amount", "amount", numeric=True),
         output.Column("Rule", "rule")],
        list(output.records(PlannedRemittance._fields, planned[:PLAN_ROWS_SHOWN], format_cents)),
        title="Remittances the run would create",
        empty="no remittances to create",
    )
    if len(planned) > PLAN_ROWS_SHOWN:
        output.message(f"... and {len(planned) - PLAN_ROWS_SHOWN:,} more (run-job --dry-run --json lists them all)")
    if result.planned_conversions:
        output.table(
            [output.Column("Payment", "payment_id"), output.Column("Client", "client_id"),
             output.Column("Event", "event_id"), output.Column("Event status", "event_status"),
             output.Column("Unapplied", "unapplied", numeric=True)],
            list(output.records(PlannedConversion._fields, result.planned_conversions[:PLAN_ROWS_SHOWN], format_cents)),
            title="Event payments that would become specific",
        )
        hidden = len(result.planned_conversions) - PLAN_ROWS_SHOWN
        if hidden > 0:
            output.message(f"... and {hidden:,} more (run-job --dry-run --json lists them all)")


def jobs(json_out: JsonOpt = False, csv_out: CsvOpt = False, limit: LimitOpt = None) -> None:
    """List the recorded runs of run-job, newest first (a table: the newest 100, as every listing;
    --limit N: the newest N in every format). --csv has the JSON's fields, with each of its counts
    in a column of its own.

    Example: payalloc --db practice.db jobs --limit 5
    """
    one_format(json_out, csv_out)
    from payalloc.services import job

    wanted = rows_wanted(limit, json_out or csv_out)
    with STATE.ledger() as conn:
        runs = job.list_runs(conn, None, STATE.db)
    total = len(runs)
    runs = runs[:wanted]
    if json_out:
        output.emit_json_rows(runs)
        return
    if csv_out:
        # Every count run-job records, in a fixed order: a run that stopped early has blanks.
        counts = list(job.JobResult().counts())
        output.emit_csv(["run_id", "started_at", "finished_at", "status", "pid", *counts, "error"],
                        ({**{k: v for k, v in run.items() if k != "counts"},
                          **{k: run["counts"].get(k) for k in counts}} for run in runs),
                        numeric=["amount_applied", "amount_posted"])
        return
    rows = []
    for run in runs:
        counts = run["counts"]
        rows.append({
            **run,
            "remittances": _count(counts.get("remittances_created")),
            "amount": output.table_money(counts.get("amount_applied")),
            "converted": _count(counts.get("event_payments_converted")),
            "posted": _count(counts.get("remittances_posted")),
            "error": run["error"] or "",
        })
    output.table(
        [output.Column("Run", "run_id"), output.Column("Started", "started_at"),
         output.Column("Status", "status"), output.Column("Remittances", "remittances", numeric=True),
         output.Column("Amount", "amount", numeric=True), output.Column("To specific", "converted", numeric=True),
         output.Column("Posted", "posted", numeric=True), output.Column("Error", "error", text=True)],
        rows, title=output.titled("run-job runs", len(rows), total, noun="run"),
        empty="run-job has not run on this ledger yet",
    )


def _count(value: object) -> str:
    """72823 -> "72,823", as the amounts beside it; blank for a count the run did not record."""
    return f"{value:,}" if isinstance(value, int) else ""


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    app.command("run-job", short_help="The nightly job: apply payments, post to the GL.")(run_job)
    app.command("jobs", short_help="List the recorded runs of run-job, newest first.")(jobs)
