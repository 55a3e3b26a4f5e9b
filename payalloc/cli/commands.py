"""Where every command module is plugged into the app.

The console script registers only the module of the command it was asked for (help and
anything unknown get all of them): building every command costs Typer ~30 ms per process,
which an idle nightly run and scripts calling payalloc in a loop would pay each time.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import typer

# Command module -> the top-level commands and groups it registers.
MODULES: dict[str, tuple[str, ...]] = {  # in the order --help lists them: the clerk's first
    "clerk": ("unallocated", "apply", "unapply", "reallocate", "audit"),
    "clients": ("client",),
    "payments": ("payment",),
    "remittances": ("remittances",),
    "events": ("event",),
    "job": ("run-job", "jobs"),
    "imports": ("import",),
    "gl": ("gl",),
    "integrity": ("check", "backup"),
    "ledger_cmds": ("init",),
}
_GLOBAL_OPTIONS_WITH_VALUE = ("--db", "--staff")


def _group(name: str, help_text: str) -> typer.Typer:
    return typer.Typer(name=name, help=help_text, no_args_is_help=True, rich_markup_mode=None)


def requested(argv: Sequence[str]) -> str | None:
    """The command named on a command line, or None when all are needed (help, version, typos)."""
    args = iter(argv)
    for arg in args:
        if arg in _GLOBAL_OPTIONS_WITH_VALUE:
            next(args, None)
        elif arg.startswith("-"):
            if arg in ("--help", "--version", "--install-completion", "--show-completion"):
                return None
        else:
            return arg if any(arg in names for names in MODULES.values()) else None
    return None


def register(app: typer.Typer, command: str | None = None) -> None:
    groups = {
        "client": _group("client", "Clients: list them, show one in detail."),
        "payment": _group("payment", "Payments: record, reconcile, void, change mode, list, show."),
        "remittances": _group("remittances", "Remittances: the allocations of payments to charges."),
        "event": _group("event", "Events (appointments) that event payments are attached to."),
        "gl": _group("gl", "General ledger: mappings, the posted journal, exports."),
    }
    for module, names in MODULES.items():
        if command is None or command in names:
            importlib.import_module(f"payalloc.cli.{module}").register(app, groups)
    for name, group in groups.items():
        if group.registered_commands:
            app.add_typer(group, name=name)
