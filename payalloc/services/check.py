"""`payalloc check`: verify every invariant of the ledger in one read snapshot.

Each violation has a stable snake_case code (scripts rely on it), the ids involved
(external keys where they exist), and one sentence. Messages name ids, never patients.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from payalloc.ledger import check as sql
from payalloc.ledger.connection import read_txn
from payalloc.money import format_cents, plain_cents

# The ids a violation may carry, in the order they are shown.
ID_FIELDS = (
    "client_id", "payment_id", "charge_id", "event_id", "remittance_id", "replaced_id",
    "batch_id", "journal_line_id", "job_run_id", "table_name", "column_name", "row_id",
    "payment_client_id", "charge_client_id",
)
# Money values a violation may carry (integer cents in a sound ledger).
MONEY_FIELDS = ("expected_cents", "actual_cents", "debit_cents", "credit_cents")

# One sentence per code; {fields} are the row's columns, money already formatted.
MESSAGES: dict[str, str] = {
    "integrity_check_failed": "the database file is damaged: {detail}",
    "foreign_key_violation": "{table_name} row {row_id} refers to a {detail} row that does not exist",
    "check_query_failed": "check {detail} could not run on this ledger",
    "guard_trigger_missing": "the guard trigger {detail} is missing: the database no longer refuses what it guards",
    "table_not_strict": "table {table_name} is missing or not STRICT: it may hold non-integer money",
    "money_not_integer": "{table_name}.{column_name} of row {row_id} is stored as {detail}, not integer cents",
    "money_not_positive": "{table_name}.{column_name} of row {row_id} is {actual}, not a positive amount",
    "payment_over_allocated": "payment {payment_id}: its remittances total {actual}, more than its amount {expected}",
    "charge_over_allocated": "charge {charge_id}: its remittances total {actual}, more than its amount {expected}",
    "payment_cache_mismatch": "payment {payment_id}: stored applied amount {actual} but its remittances total {expected}",
    "charge_cache_mismatch": "charge {charge_id}: stored applied amount {actual} but its remittances total {expected}",
    "remittance_client_mismatch": (
        "remittance {remittance_id} is for client {client_id} but payment {payment_id} is of client "
        "{payment_client_id} and charge {charge_id} of client {charge_client_id}"
    ),
    "insurance_charge_allocated": "remittance {remittance_id} allocates {actual} to insurance charge {charge_id}",
    "remittance_on_unready_payment": "remittance {remittance_id} allocates payment {payment_id}, which is {detail}",
    "reversal_incomplete": "reversed remittance {remittance_id}: {detail}",
    "reversal_unbalanced": (
        "reversed remittance {remittance_id}: reversing lines debit {debit} and credit {credit}, "
        "not its amount {expected}"
    ),
    "posting_unbalanced": (
        "posted remittance {remittance_id}: posting lines in batch {batch_id} debit {debit} and credit {credit}, "
        "not its amount {expected}"
    ),
    "journal_lines_unexpected": (
        "journal line {journal_line_id} ({detail}) belongs to remittance {remittance_id}, "
        "which has no such entry"
    ),
    "reversal_not_mirrored": (
        "reversed remittance {remittance_id}: its journal lines on account {detail} net to {actual}, "
        "not 0.00 (the reversing entry is not the mirror of the posting)"
    ),
    "journal_batch_unbalanced": "posting batch {batch_id} ({detail}): debits {debit} and credits {credit} differ, "
    "or a line's entry is not the batch's kind",
    "manual_without_staff": "manual remittance {remittance_id} does not record the staff who applied it",
    "manual_without_audit": (
        "manual remittance {remittance_id} (payment {payment_id}, charge {charge_id}) is in no audit row:"
        " it was not made by payalloc apply, reallocate or unapply"
    ),
    "job_with_staff": "job remittance {remittance_id} records staff or lacks its job run and rule",
    "remittance_replacement_invalid": (
        "remittance {remittance_id} replaces remittance {replaced_id}, which is not a reversed, larger, "
        "earlier remittance of the same payment and charge"
    ),
    "event_payment_without_event": "event payment {payment_id} is attached to no existing event",
    "event_payment_on_deleted_event": "event payment {payment_id} is still attached to deleted event {event_id}",
    "event_client_mismatch": "event {event_id} is of another client than {subject}",
    "gl_mappings_same_account": (
        "GL mappings unapplied_default and self_pay_ar name the same account: each posting would debit and"
        " credit it; map one of them to another account (payalloc gl map KEY ACCOUNT)"
    ),
    "apply_to_invalid": "payment {payment_id} has an invalid apply-to or status ({detail})",
    "date_invalid": "{table_name}.{column_name} of row {row_id} is not a real YYYY-MM-DD date",
    "job_work_unmarked": "client {client_id} has work for run-job (payment {payment_id}) but is not marked for it",
    "job_run_inconsistent": "job run {job_run_id} is {detail} but its finish time says otherwise",
}
CODES = tuple(MESSAGES)


@dataclass(frozen=True)
class Violation:
    code: str
    message: str
    ids: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.ids}


@dataclass(frozen=True)
class CheckReport:
    counts: dict[str, int]
    violations: list[Violation]

    @property
    def ok(self) -> bool:
        return not self.violations

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "counts": self.counts,
            "violations": [v.as_json() for v in self.violations],
        }


def _money(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return format_cents(value) if isinstance(value, int) else repr(value)


def _json_value(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return plain_cents(value) if isinstance(value, int) else str(value)


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "?"


def violation(code: str, row: dict[str, Any]) -> Violation:
    """A violation from one row of a check query (or of a PRAGMA)."""
    values = _Blank({k: str(v) for k, v in row.items()})
    for name in MONEY_FIELDS:
        if name in row:
            values[name.removesuffix("_cents")] = _money(row[name])
    values["subject"] = (
        f"payment {row['payment_id']}" if "payment_id" in row else f"charge {row.get('charge_id', '?')}"
    )
    ids: dict[str, Any] = {name: row[name] for name in ID_FIELDS if name in row}
    if "detail" in row:
        ids["detail"] = str(row["detail"])
    for name in MONEY_FIELDS:
        if name in row:
            ids[name.removesuffix("_cents")] = _json_value(row[name])
    return Violation(code, MESSAGES[code].format_map(values), ids)


# A check is a query of ledger/check.py, or a function that runs a PRAGMA and returns its rows.
_Check = sql.Check | Callable[[sqlite3.Connection], list[dict[str, Any]]]


def check_ledger(conn: sqlite3.Connection) -> CheckReport:
    """Run every check in one read snapshot; collect every violation (never stop at the first)."""
    violations: list[Violation] = []
    with read_txn(conn):
        for message in sql.integrity_errors(conn):
            violations.append(violation("integrity_check_failed", {"detail": message}))
        checks: list[tuple[str, _Check]] = [("foreign_key_violation", sql.foreign_key_errors)]
        checks += [(c.code, c) for c in sql.CHECKS]
        for code, how in checks:
            try:
                rows = how(conn) if callable(how) else sql.run(conn, how)
            except sql.CheckQueryFailed as failed:
                violations.append(
                    violation("check_query_failed", {"detail": f"{failed.code} ({failed.error})"})
                )
                continue
            violations.extend(violation(code, row) for row in rows)
        try:
            counts = sql.counts(conn)
        except sql.CheckQueryFailed as failed:
            violations.append(violation("check_query_failed", {"detail": f"counts ({failed.error})"}))
            counts = {"clients": 0, "payments": 0, "charges": 0, "remittances": 0}
    return CheckReport(counts, violations)
