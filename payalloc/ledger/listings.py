"""SQL of the plain listings. Filters are chosen from constant fragments, never built from user text.

A listing's rows come straight from its cursor, one at a time: a 400,000-payment export keeps
one row in memory, not all of them (read them inside the read transaction that made them)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Listing:
    """A listing's field names, known from the query even when no row matches (an empty CSV
    export has the same header as a full one: a script reads columns by name), and its rows as
    tuples in that order, read from the cursor as they are consumed."""

    fields: list[str]
    rows: Iterator[tuple[Any, ...]]


def from_cursor(cursor: sqlite3.Cursor) -> Listing:
    """The listing of a query just executed: its column names, and its rows as they are read."""
    return Listing([d[0] for d in cursor.description], iter(cursor))


def _filtered(
    conn: sqlite3.Connection,
    select: str,
    filters: Mapping[str, str],
    params: Mapping[str, int | str | None],
    order_by: str,
) -> Listing:
    """SELECT with the constant filter of each parameter given (not None), in ORDER_BY."""
    where = [filters[k] for k, v in params.items() if v is not None]
    sql = select + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY " + order_by
    return from_cursor(conn.execute(sql, params))


def _folded(text: str | None) -> str:
    return "" if text is None else text.casefold()


def clients(conn: sqlite3.Connection, name: str | None = None) -> Listing:
    """Every client, or those whose name (or responsible party) holds `name`, in any case ("iñigo"
    finds "Íñigo": Python's casefold, as SQLite's lower() folds ASCII letters alone)."""
    conn.create_function("payalloc_folded", 1, _folded, deterministic=True)
    return from_cursor(conn.execute(
        "SELECT c.client_key AS client_id, c.name, c.responsible_party,"
        " (SELECT count(*) FROM payments p WHERE p.client_id = c.id AND p.status <> 'void') AS payments,"
        " (SELECT count(*) FROM charges ch WHERE ch.client_id = c.id) AS charges"
        " FROM clients c"
        " WHERE ?1 IS NULL OR instr(payalloc_folded(c.name), ?1) OR instr(payalloc_folded(c.responsible_party), ?1)"
        " ORDER BY c.client_key",
        (None if name is None else name.casefold(),),
    ))


_PAYMENTS = (
    "SELECT p.payment_key AS payment_id, c.client_key AS client_id, p.received_date, p.amount_cents,"
    " p.amount_cents - p.applied_cents AS unapplied_cents, p.apply_to, p.status, e.event_key AS event_id,"
    " p.method, p.reference, p.note, p.payer_name"
    " FROM payments p JOIN clients c ON c.id = p.client_id LEFT JOIN events e ON e.id = p.event_id"
)
_PAYMENT_FILTERS = {"client": "p.client_id = :client", "status": "p.status = :status", "apply_to": "p.apply_to = :apply_to"}


def payments(conn: sqlite3.Connection, *, client: int | None, status: str | None, apply_to: str | None) -> Listing:
    params = {"client": client, "status": status, "apply_to": apply_to}
    return _filtered(conn, _PAYMENTS, _PAYMENT_FILTERS, params, "p.received_date, p.id")


_REMITTANCES = (
    "SELECT r.id, p.payment_key AS payment_id, ch.charge_key AS charge_id, c.client_key AS client_id,"
    " r.amount_cents, r.status, r.source, r.rule, r.staff, r.job_run_id, r.created_at, r.reversed_at,"
    " r.reversed_by, r.reversal_reason, r.replaces_id"
    " FROM remittances r JOIN payments p ON p.id = r.payment_id JOIN charges ch ON ch.id = r.charge_id"
    " JOIN clients c ON c.id = r.client_id"
)
# A client's remittances are those of the client's payments (there is no index by client).
_REMITTANCE_FILTERS = {"client": "r.payment_id IN (SELECT id FROM payments WHERE client_id = :client)", "payment": "r.payment_id = :payment", "status": "r.status = :status"}


def remittances(conn: sqlite3.Connection, *, client: int | None, payment: int | None, status: str | None) -> Listing:
    params = {"client": client, "payment": payment, "status": status}
    return _filtered(conn, _REMITTANCES, _REMITTANCE_FILTERS, params, "r.id")
