"""Options shared by many commands, declared once."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Annotated

import typer

from payalloc.errors import UsageError


class ApplyTo(StrEnum):
    """How a payment is applied (spec: apply-to)."""

    oldest = "oldest"
    specific = "specific"
    event = "event"


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts (amounts are strings).")]
CsvOpt = Annotated[bool, typer.Option("--csv", help="Print CSV (spreadsheet formulas neutralized).")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (kept in the audit trail).")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Check and report without writing anything.")]


# Rule 5: a posted remittance is reversed by a reversing entry; unapply and payment void say so alike.
REVERSED_IN_GL = "so reversing lines were written to the general ledger journal"

# SQLite's integers end at 2**63 - 1: a larger number cannot be an id (a usage error, not a crash).
_MAX_INTEGER = 2**63 - 1


def whole_number(what: str) -> Callable[[str | int], int]:
    """A parser of a number from 1 (an id, a count) that names what it wanted when refused (exit 2)."""

    def parse(text: str | int) -> int:  # an int: the option's default, parsed too
        value = str(text).strip()
        if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= _MAX_INTEGER:
            raise typer.BadParameter(f"'{text}' is not {what} (a whole number from 1)")
        return int(value)

    return parse


def row_count(text: str | int) -> int:
    """A parser of a number of rows: a whole number from 0 (all), refused as a usage error (exit 2)."""
    value = str(text).strip()
    if not (value.isascii() and value.isdigit()) or int(value) > _MAX_INTEGER:
        raise typer.BadParameter(f"'{text}' is not a number of rows (a whole number; 0 for all)")
    return int(value)


TABLE_ROWS = 100  # rows a table shows unless --limit says otherwise: a screenful or two, most useful first
LimitOpt = Annotated[int | None, typer.Option(
    "--limit", metavar="N", parser=row_count, show_default=False,
    help=f"Show at most N rows (0: all). A table shows {TABLE_ROWS} unless told; --json and --csv print every"
         " row unless told.")]


def rows_wanted(limit: int | None, machine: bool) -> int | None:
    """How many rows to print (None: all), from --limit and the format."""
    if limit is None:
        return None if machine else TABLE_ROWS
    return limit or None


def exclusive(*options: tuple[str, bool]) -> None:
    """Refuse, as a usage error (exit 2), more than one of OPTIONS given: ("--json", json_out), ..."""
    given = [name for name, on in options if on]
    if len(given) > 1:
        raise UsageError(f"choose one of {' and '.join(given)}")


def one_format(json_out: bool, csv_out: bool) -> None:
    exclusive(("--json", json_out), ("--csv", csv_out))


def confirm(question: str) -> bool:
    """Ask on the terminal; only y or yes is a yes, anything else unknown is asked again. Not
    typer.confirm: it turns end of input and Ctrl-C into "Aborted!" and exit 1 (a bug, in the spec).
    End of input is a no; Ctrl-C goes on to the error boundary (exit 130, said as for any command)."""
    from payalloc.cli import output

    while True:
        output.to_stderr(f"{question} [y/N]: ")  # stderr, as every message: stdout may be a file
        try:
            answer = input().strip().lower()
        except EOFError:
            output.to_stderr("\n")  # the refusal goes on a line of its own
            return False
        except KeyboardInterrupt:
            output.to_stderr("\n")
            raise
        if answer in ("y", "yes"):
            return True
        if answer in ("", "n", "no"):
            return False
        output.message("please answer y or n")


ClientOpt = Annotated[str | None, typer.Option("--client", help="Only this client (client_id).")]
