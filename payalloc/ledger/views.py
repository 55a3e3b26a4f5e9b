"""SQL of the clerk's read-only views: the unallocated bucket and the audit trail."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from payalloc.ledger.audit import read_detail


@dataclass(frozen=True)
class BucketRow:
    """One client of the unallocated bucket, as the ledger sums it up."""

    client_key: str
    name: str
    total_cents: int  # every non-void payment: "total client payments and deposits"
    unallocated_cents: int  # ready payments' unapplied amounts
    pending_cents: int  # pending payments' amounts (not allocatable yet)
    charges_balance_cents: int  # open self-pay (self_pay, patient_resp) balance
    oldest_open_date: str | None  # received_date of the oldest ready payment with money unapplied
    has_open_specific: bool  # a ready specific payment with money unapplied


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: str
    staff: str | None
    action: str
    client_key: str | None
    payment_key: str | None
    charge_key: str | None
    event_key: str | None
    remittance_id: int | None
    job_run_id: int | None
    reason: str | None
    detail: dict[str, Any] | None


# Which clients: those with money waiting, found through the payments_open partial index (only
# open payments are in it, so the bucket costs what is in the bucket, not the size of the ledger).
_OPEN_CLIENTS = "SELECT client_id FROM payments WHERE status = 'ready' AND applied_cents < amount_cents"
# --all adds clients with pending payments; no index holds those, so this part reads the payments.
_PENDING_CLIENTS = "SELECT client_id FROM payments WHERE status = 'pending'"

_BUCKET = """
WITH bucket(client_id) AS ({clients})
SELECT c.client_key, c.name,
       sum(CASE WHEN p.status <> 'void' THEN p.amount_cents ELSE 0 END),
       sum(CASE WHEN p.status = 'ready' THEN p.amount_cents - p.applied_cents ELSE 0 END),
       sum(CASE WHEN p.status = 'pending' THEN p.amount_cents ELSE 0 END),
       (SELECT coalesce(sum(ch.amount_cents - ch.applied_cents), 0) FROM charges ch
         WHERE ch.client_id = c.id AND ch.payer <> 'insurance'),  -- self-pay, as the job reads it
       min(CASE WHEN p.status = 'ready' AND p.applied_cents < p.amount_cents THEN p.received_date END),
       max(p.status = 'ready' AND p.apply_to = 'specific' AND p.applied_cents < p.amount_cents)
  FROM (SELECT DISTINCT client_id FROM bucket) b
  JOIN clients c ON c.id = b.client_id
  JOIN payments p ON p.client_id = c.id
 GROUP BY c.id
 ORDER BY c.client_key
"""


def bucket_sql(include_pending: bool) -> str:
    clients = _OPEN_CLIENTS + (" UNION ALL " + _PENDING_CLIENTS if include_pending else "")
    return _BUCKET.format(clients=clients)


def bucket(conn: sqlite3.Connection, *, include_pending: bool) -> list[BucketRow]:
    rows = conn.execute(bucket_sql(include_pending)).fetchall()
    return [BucketRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7])) for r in rows]


_AUDIT_SELECT = (
    "SELECT id, at, staff, action, client_key, payment_key, charge_key, event_key, remittance_id,"
    " job_run_id, reason, detail FROM audit"
)
# One fixed statement per filter combination: by client through audit_client, by date through audit_at.
_AUDIT_SQL = {
    (False, False): _AUDIT_SELECT + " ORDER BY at, id",
    (True, False): _AUDIT_SELECT + " WHERE client_key = ? ORDER BY at, id",
    (False, True): _AUDIT_SELECT + " WHERE at >= ? ORDER BY at, id",
    (True, True): _AUDIT_SELECT + " WHERE client_key = ? AND at >= ? ORDER BY at, id",
}


def audit_rows(conn: sqlite3.Connection, *, client_key: str | None, since: str | None) -> list[AuditRow]:
    """The audit trail in time order. `since` is a date: 'YYYY-MM-DD' sorts before that day's timestamps."""
    params = [v for v in (client_key, since) if v is not None]
    sql = _AUDIT_SQL[(client_key is not None, since is not None)]
    out = []
    for r in conn.execute(sql, params).fetchall():
        detail = json.loads(r[11]) if r[11] else None
        out.append(
            AuditRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10],
                     read_detail(r[3], detail) if isinstance(detail, dict) else None)
        )
    return out
