"""Schema migrations (sqlite-utils `Migrations`). A shipped migration is never edited."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlite_utils import Database, Migrations

MIGRATION_SET = "payalloc"
# Bumped by each migration: lets a command refuse a ledger newer than itself without
# importing sqlite-utils (0.1 s) on every run.
SCHEMA_VERSION = 2


def _statements(script: str) -> list[str]:
    """Split a script into statements (triggers hold semicolons) without executescript,
    which would COMMIT the transaction that init runs the migrations in."""
    out: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        if not current and (not line.strip() or line.lstrip().startswith("--")):
            continue
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    if current.strip():
        raise ValueError("a migration script ends in an incomplete statement")
    return out


def _run_script(db: Database, name: str) -> None:
    from importlib import resources  # here, not at the top: every command imports SCHEMA_VERSION

    script = resources.files("payalloc.ledger").joinpath(name).read_text(encoding="utf-8")
    for statement in _statements(script):
        db.execute(statement)


def build() -> Migrations:
    """The migration set; built on demand so that sqlite-utils loads only for `init`."""
    from sqlite_utils import Migrations

    migrations = Migrations(MIGRATION_SET)

    @migrations(name="0001_initial")
    def _initial(db: Database) -> None:
        _run_script(db, "schema.sql")
        db.execute("PRAGMA user_version = 1")

    @migrations(name="0002_cheap_checks_and_job_caches")
    def _cheap_checks(db: Database) -> None:
        # Rebuilds tables: needs foreign_keys OFF, which init_ledger sets around the migrations.
        _run_script(db, "migration_0002.sql")
        db.execute("PRAGMA user_version = 2")

    return migrations


def apply(conn: sqlite3.Connection) -> list[str]:
    """Apply pending migrations inside the caller's open transaction; return their names."""
    from sqlite_utils import Database

    migrations = build()
    db = Database(conn, execute_plugins=False)
    pending = [m.name for m in migrations.pending(db)]
    migrations.apply(db)
    return pending
