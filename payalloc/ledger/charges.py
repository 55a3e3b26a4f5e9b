"""SQL for charges: the look-ups a clerk's commands need (apply, client show).

Every look-up goes through the UNIQUE charge key or the charges_client index.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class ChargeRow:
    id: int
    key: str
    client_id: int
    client_key: str
    service_date: str
    amount_cents: int
    applied_cents: int
    payer: str
    service_code: str | None
    description: str | None
    event_key: str | None

    @property
    def balance_cents(self) -> int:
        return self.amount_cents - self.applied_cents


_CHARGE_SELECT = (
    "SELECT ch.id, ch.charge_key, ch.client_id, c.client_key, ch.service_date, ch.amount_cents,"
    " ch.applied_cents, ch.payer, ch.service_code, ch.description, e.event_key"
    " FROM charges ch JOIN clients c ON c.id = ch.client_id LEFT JOIN events e ON e.id = ch.event_id"
)


def _charge(row: tuple[object, ...]) -> ChargeRow:
    return ChargeRow(*row)  # type: ignore[arg-type]


def find_charge(conn: sqlite3.Connection, charge_key: str) -> ChargeRow | None:
    row = conn.execute(_CHARGE_SELECT + " WHERE ch.charge_key = ?", (charge_key,)).fetchone()
    return None if row is None else _charge(row)


def charges_by_keys(conn: sqlite3.Connection, keys: list[str]) -> dict[str, ChargeRow]:
    """The named charges (unknown keys are absent), one UNIQUE-key probe each."""
    out: dict[str, ChargeRow] = {}
    for key in dict.fromkeys(keys):
        row = find_charge(conn, key)
        if row is not None:
            out[key] = row
    return out


def charges_of_client(conn: sqlite3.Connection, client_id: int) -> list[ChargeRow]:
    """All charges of one client in order of (service_date, entry), through charges_client."""
    rows = conn.execute(
        _CHARGE_SELECT + " WHERE ch.client_id = ? ORDER BY ch.service_date, ch.id", (client_id,)
    ).fetchall()
    return [_charge(r) for r in rows]
