"""Where every command module is plugged into the app. One line per module."""

from __future__ import annotations

import typer


def _group(name: str, help_text: str) -> typer.Typer:
    return typer.Typer(name=name, help=help_text, no_args_is_help=True, rich_markup_mode=None)


def register(app: typer.Typer) -> None:
    groups = {
        "client": _group("client", "Clients: list them, show one in detail."),
        "payment": _group("payment", "Payments: record, reconcile, void, change mode, list, show."),
        "remittances": _group("remittances", "Remittances: the allocations of payments to charges."),
        "event": _group("event", "Events (appointments) that event payments are attached to."),
        "gl": _group("gl", "General ledger: account mappings, the posted journal, exports."),
    }
    from payalloc.cli import ledger_cmds

    ledger_cmds.register(app, groups)
    from payalloc.cli import integrity; integrity.register(app, groups)  # noqa: E702, I001
    from payalloc.cli import imports

    imports.register(app, groups)
    from payalloc.cli import listings

    listings.register(app, groups)
    from payalloc.cli import events, gl, job

    job.register(app, groups)
    events.register(app, groups)
    gl.register(app, groups)

    from payalloc.cli import clerk, clients, payments

    payments.register(app, groups)
    clients.register(app, groups)
    clerk.register(app, groups)

    for name, group in groups.items():
        if group.registered_commands:
            app.add_typer(group, name=name)
