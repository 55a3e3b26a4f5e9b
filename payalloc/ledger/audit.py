"""The audit trail: one row per manual action (or job conversion), in the action's transaction."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from payalloc.money import plain_cents

# Actions that `check` reads back (ledger/check.py) to prove a remittance was made or reversed by
# payalloc. They are stored in every ledger: never rename one.
APPLY = "apply"
UNAPPLY = "unapply"
PAYMENT_VOID = "payment.void"
CONVERSION = "payment_apply_to_specific"  # rule 4: an event payment made specific (also by the job, in bulk)


def record(
    conn: sqlite3.Connection,
    *,
    at: str,
    staff: str | None,
    action: str,
    client_key: str | None = None,
    payment_key: str | None = None,
    charge_key: str | None = None,
    event_key: str | None = None,
    remittance_id: int | None = None,
    job_run_id: int | None = None,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    assert conn.in_transaction, "audit rows are written in the action's own transaction"
    conn.execute(
        "INSERT INTO audit (at, staff, action, client_key, payment_key, charge_key, event_key,"
        " remittance_id, job_run_id, reason, detail) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            at, staff, action, client_key, payment_key, charge_key, event_key,
            remittance_id, job_run_id, reason,
            None if detail is None else json.dumps(detail, sort_keys=True),
        ),
    )


def record_conversion(
    conn: sqlite3.Connection,
    *,
    at: str,
    staff: str | None,
    client_key: str,
    payment_key: str,
    event_key: str,
    event_status: str,
    unapplied_cents: int,
) -> None:
    """The audit row of an event payment made `specific` (rule 4) with money still unapplied."""
    record(
        conn, at=at, staff=staff, action=CONVERSION, client_key=client_key,
        payment_key=payment_key, event_key=event_key, reason=conversion_reason(event_key, event_status),
        detail=conversion_detail(unapplied_cents, event_status),
    )


def conversion_reason(event_key: str, event_status: str) -> str:
    """The reason of a payment_apply_to_specific row: the event is done, or was deleted."""
    what = "is done" if event_status == "done" else "was deleted"
    return f"event {event_key} {what} and the payment is not fully applied"


def conversion_detail(unapplied_cents: int, event_status: str) -> dict[str, Any]:
    """The detail of a payment_apply_to_specific row; money as "1234.50", as everywhere in JSON."""
    return {"from": "event", "to": "specific", "unapplied": plain_cents(unapplied_cents),
            "event_status": event_status}


def read_detail(action: str, detail: dict[str, Any]) -> dict[str, Any]:
    """A stored detail as it is shown. Conversions recorded by earlier versions kept `unapplied`
    in cents (16000 for 160.00); the trail is never rewritten, so such a detail is read as money."""
    unapplied = detail.get("unapplied")
    if action == "payment_apply_to_specific" and type(unapplied) is int:
        return {**detail, "unapplied": plain_cents(unapplied)}
    return detail
