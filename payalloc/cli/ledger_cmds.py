"""`payalloc init`: the ledger file itself (`check` and `backup` are in integrity.py)."""

from __future__ import annotations

import typer

from payalloc.cli import output
from payalloc.cli.state import STATE


def init() -> None:
    """Create the ledger file (owner-only, mode 0600) or upgrade its schema. Safe to repeat.

    Example: payalloc --db practice.db init
    """
    from payalloc.ledger.connection import init_ledger

    created, applied = init_ledger(STATE.db)
    if created:
        output.message(f"created ledger {STATE.db}")
    elif applied:
        output.message(f"upgraded ledger {STATE.db}: applied {', '.join(applied)}")
    else:
        output.message(f"ledger {STATE.db} is up to date")
    output.warn_if_shared(STATE.db)


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    app.command("init", short_help="Create the ledger file, or upgrade its schema.")(init)
