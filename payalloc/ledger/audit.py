"""The audit trail: one row per manual action (or job conversion), in the action's transaction."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from payalloc.money import plain_cents

# The actions of the trail. They are stored in every ledger, and `check` reads some back
# (ledger/check.py) to prove a remittance was made or reversed by payalloc: never rename one
# (hence the two spellings).
APPLY = "apply"
UNAPPLY = "unapply"
REALLOCATE = "reallocate"
PAYMENT_RECORD = "payment.record"
PAYMENT_READY = "payment.ready"
PAYMENT_MODE = "payment.mode"
PAYMENT_VOID = "payment.void"
CONVERSION = "payment_apply_to_specific"  # rule 4: an event payment made specific (also by the job, in bulk)
EVENT_ADD = "event_add"
EVENT_DONE = "event_done"
EVENT_DELETE = "event_delete"
GL_MAP = "gl_map"


def import_action(kind: str) -> str:
    """import_clients, import_events, import_charges, import_payments."""
    return f"import_{kind}"


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


def record_conversions(
    conn: sqlite3.Connection,
    *,
    at: str,
    staff: str | None,
    job_run_id: int | None,
    conversions: Sequence[tuple[str, str, str, str, int]],
) -> None:
    """The audit rows of event payments made `specific` (rule 4) with money still unapplied:
    (client key, payment key, event key, event status, unapplied cents) each. One statement for
    all, as the job converts many at once."""
    assert conn.in_transaction, "audit rows are written in the action's own transaction"
    conn.executemany(
        "INSERT INTO audit (at, staff, action, client_key, payment_key, event_key, job_run_id, reason,"
        " detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(at, staff, CONVERSION, client_key, payment_key, event_key, job_run_id,
          conversion_reason(event_key, event_status),
          json.dumps(conversion_detail(unapplied_cents, event_status), sort_keys=True))
         for client_key, payment_key, event_key, event_status, unapplied_cents in conversions],
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
    if action == CONVERSION and type(unapplied) is int:
        return {**detail, "unapplied": plain_cents(unapplied)}
    return detail
