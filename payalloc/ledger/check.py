"""The SQL of `payalloc check`: every invariant the schema cannot guarantee, one query each.

Each query returns one row per violation, with columns from a small vocabulary so that
the service can name the ids involved without knowing the SQL:

- ids: ``remittance_id`` and ``replaced_id`` (internal: remittances have no external key),
  ``payment_id``, ``charge_id``, ``client_id``, ``event_id`` (the external keys),
  ``payment_client_id``, ``charge_client_id``, ``batch_id``, ``journal_line_id``,
  ``job_run_id``, ``table_name``, ``column_name``, ``row_id`` (services/check.py ID_FIELDS);
- values: ``expected_cents``, ``actual_cents``, ``debit_cents``, ``credit_cents`` (numbers,
  possibly not integers in a corrupt ledger), ``detail`` (a short text: a fixed word, a
  trigger's name or a GL account; never a patient's name or a note).

Queries are set-based (GROUP BY and joins, no per-row Python) and run inside the caller's
read transaction, so that they all see one snapshot. Sums use ``total()``: a corrupt
ledger can hold amounts that would overflow ``sum()``.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from payalloc.ledger import audit

ACTIVE = "status <> 'reversed'"


@dataclass(frozen=True)
class Check:
    code: str
    sql: str
    params: tuple[Any, ...] = ()


class CheckQueryFailed(Exception):
    """A check query could not run (a corrupt page, a missing table)."""

    def __init__(self, code: str, error: str) -> None:
        super().__init__(f"{code}: {error}")
        self.code = code
        self.error = error


# The triggers that guard the rules and keep the caches (not the job's work markers). A test
# asserts that a fresh ledger has exactly these guards, so a migration cannot drift silently.
GUARD_TRIGGERS = (
    "remittances_guard_insert",
    "remittances_applied",
    "remittances_guard_update",
    "remittances_reversed",
    "charges_guard_update",
    "payments_guard_update",
    "events_guard_update",
    "remittances_no_delete",
    "payments_no_delete",
    "charges_no_delete",
    "clients_no_delete",
    "events_no_delete",
    "journal_lines_no_delete",
    "journal_lines_no_update",
    "audit_no_delete",
    "audit_no_update",
)
LEDGER_TABLES = (
    "clients", "events", "charges", "payments", "job_runs", "posting_batches",
    "remittances", "journal_lines", "gl_mappings", "audit",
)

_REMITTANCE_IDS = """
    r.id AS remittance_id, p.payment_key AS payment_id, ch.charge_key AS charge_id, cl.client_key AS client_id
"""
_REMITTANCE_JOINS = """
    LEFT JOIN payments p ON p.id = r.payment_id
    LEFT JOIN charges ch ON ch.id = r.charge_id
    LEFT JOIN clients cl ON cl.id = r.client_id
"""


def _not_integer(table: str, column: str, id_name: str, key: str) -> str:
    """One arm of a UNION ALL: columns table_name, column_name, row_id, payment_id, charge_id,
    remittance_id, detail (every arm must give the same columns in the same order)."""
    ids = {"payment_id": "NULL", "charge_id": "NULL", "remittance_id": "NULL", id_name: key}
    # Identifiers here come from this module's literals only, never from input.
    return (
        f"SELECT '{table}' AS table_name, '{column}' AS column_name, id AS row_id,"  # noqa: S608
        f" {ids['payment_id']} AS payment_id, {ids['charge_id']} AS charge_id,"
        f" {ids['remittance_id']} AS remittance_id, typeof({column}) AS detail"
        f" FROM {table} WHERE typeof({column}) <> 'integer'"
    )


def _bad_date(table: str, column: str, key: str, id_name: str) -> str:
    return (
        f"SELECT '{table}' AS table_name, '{column}' AS column_name, id AS row_id, {key} AS {id_name}"  # noqa: S608
        f" FROM {table} WHERE {column} IS NOT date({column}, '+0 days')"  # normalizes 02-30 to 03-02
    )


CHECKS: tuple[Check, ...] = (
    Check(
        "guard_trigger_missing",
        "SELECT g.value AS detail FROM json_each(?) g"
        " WHERE NOT EXISTS (SELECT 1 FROM sqlite_schema s WHERE s.type = 'trigger' AND s.name = g.value)",
        (json.dumps(GUARD_TRIGGERS),),
    ),
    Check(
        "table_not_strict",
        "SELECT t.value AS table_name FROM json_each(?) t"
        " WHERE NOT EXISTS (SELECT 1 FROM pragma_table_list l"
        "                   WHERE l.schema = 'main' AND l.name = t.value AND l.strict = 1)",
        (json.dumps(LEDGER_TABLES),),
    ),
    Check(
        "money_not_integer",
        " UNION ALL ".join([
            _not_integer("payments", "amount_cents", "payment_id", "payment_key"),
            _not_integer("payments", "applied_cents", "payment_id", "payment_key"),
            _not_integer("charges", "amount_cents", "charge_id", "charge_key"),
            _not_integer("charges", "applied_cents", "charge_id", "charge_key"),
            _not_integer("remittances", "amount_cents", "remittance_id", "id"),
            _not_integer("journal_lines", "debit_cents", "remittance_id", "remittance_id"),
            _not_integer("journal_lines", "credit_cents", "remittance_id", "remittance_id"),
        ]),
    ),
    Check(
        "money_not_positive",
        """
        SELECT 'payments' AS table_name, 'amount_cents' AS column_name, id AS row_id,
               payment_key AS payment_id, NULL AS charge_id, NULL AS remittance_id, amount_cents AS actual_cents
          FROM payments WHERE amount_cents <= 0
        UNION ALL
        SELECT 'charges', 'amount_cents', id, NULL, charge_key, NULL, amount_cents
          FROM charges WHERE amount_cents <= 0
        UNION ALL
        SELECT 'remittances', 'amount_cents', id, NULL, NULL, id, amount_cents
          FROM remittances WHERE amount_cents <= 0
        UNION ALL
        SELECT 'journal_lines', CASE WHEN debit_cents < 0 OR debit_cents > 0 THEN 'debit_cents'
                                     ELSE 'credit_cents' END,
               id, NULL, NULL, remittance_id,
               CASE WHEN debit_cents < 0 OR debit_cents > 0 THEN debit_cents ELSE credit_cents END
          FROM journal_lines
         WHERE debit_cents < 0 OR credit_cents < 0 OR NOT ((debit_cents > 0) <> (credit_cents > 0))
        """,
    ),
    Check(
        "payment_over_allocated",
        f"""
        SELECT p.payment_key AS payment_id, cl.client_key AS client_id,
               p.amount_cents AS expected_cents, s.total AS actual_cents
          FROM (SELECT payment_id, total(amount_cents) AS total FROM remittances
                 WHERE {ACTIVE} GROUP BY payment_id) s
          JOIN payments p ON p.id = s.payment_id
          LEFT JOIN clients cl ON cl.id = p.client_id
         WHERE s.total > p.amount_cents
        """,  # noqa: S608
    ),
    Check(
        "charge_over_allocated",
        f"""
        SELECT ch.charge_key AS charge_id, cl.client_key AS client_id,
               ch.amount_cents AS expected_cents, s.total AS actual_cents
          FROM (SELECT charge_id, total(amount_cents) AS total FROM remittances
                 WHERE {ACTIVE} GROUP BY charge_id) s
          JOIN charges ch ON ch.id = s.charge_id
          LEFT JOIN clients cl ON cl.id = ch.client_id
         WHERE s.total > ch.amount_cents
        """,  # noqa: S608
    ),
    Check(
        "payment_cache_mismatch",
        f"""
        SELECT p.payment_key AS payment_id, p.applied_cents AS actual_cents,
               coalesce(s.total, 0) AS expected_cents
          FROM payments p
          LEFT JOIN (SELECT payment_id, total(amount_cents) AS total FROM remittances
                      WHERE {ACTIVE} GROUP BY payment_id) s ON s.payment_id = p.id
         WHERE p.applied_cents IS NOT coalesce(s.total, 0)
        """,  # noqa: S608
    ),
    Check(
        "charge_cache_mismatch",
        f"""
        SELECT ch.charge_key AS charge_id, ch.applied_cents AS actual_cents,
               coalesce(s.total, 0) AS expected_cents
          FROM charges ch
          LEFT JOIN (SELECT charge_id, total(amount_cents) AS total FROM remittances
                      WHERE {ACTIVE} GROUP BY charge_id) s ON s.charge_id = ch.id
         WHERE ch.applied_cents IS NOT coalesce(s.total, 0)
        """,  # noqa: S608
    ),
    Check(
        "remittance_client_mismatch",
        """
        SELECT r.id AS remittance_id, p.payment_key AS payment_id, ch.charge_key AS charge_id,
               cl.client_key AS client_id, pc.client_key AS payment_client_id, cc.client_key AS charge_client_id
          FROM remittances r
          JOIN payments p ON p.id = r.payment_id
          JOIN charges ch ON ch.id = r.charge_id
          LEFT JOIN clients cl ON cl.id = r.client_id
          LEFT JOIN clients pc ON pc.id = p.client_id
          LEFT JOIN clients cc ON cc.id = ch.client_id
         WHERE p.client_id IS NOT r.client_id OR ch.client_id IS NOT r.client_id
        """,
    ),
    Check(
        "insurance_charge_allocated",
        f"""
        SELECT {_REMITTANCE_IDS}, r.amount_cents AS actual_cents
          FROM remittances r {_REMITTANCE_JOINS}
         WHERE r.{ACTIVE} AND ch.payer = 'insurance'
        """,  # noqa: S608
    ),
    Check(
        "remittance_on_unready_payment",
        f"""
        SELECT {_REMITTANCE_IDS}, p.status AS detail
          FROM remittances r {_REMITTANCE_JOINS}
         WHERE (r.{ACTIVE} AND p.status <> 'ready') OR p.status = 'pending'
        """,  # noqa: S608
    ),
    Check(
        "reversal_incomplete",
        f"""
        SELECT {_REMITTANCE_IDS}, 'reversed_at, reversed_by or reason missing' AS detail
          FROM remittances r {_REMITTANCE_JOINS}
         WHERE r.status = 'reversed'
           AND (r.reversed_at IS NULL OR r.reversed_by IS NULL OR trim(r.reversed_by) = ''
                OR r.reversal_reason IS NULL OR trim(r.reversal_reason) = '')
        UNION ALL
        SELECT {_REMITTANCE_IDS}, 'no audit row names it'
          FROM remittances r {_REMITTANCE_JOINS}
         WHERE r.status = 'reversed' AND r.id NOT IN (
               -- unapply and reallocate name the remittance; a void names its payment and lists
               -- the remittances it reversed. One set, built once (no per-row scan of the audit).
               SELECT remittance_id FROM audit WHERE remittance_id IS NOT NULL
               UNION ALL
               SELECT j.value
                 FROM (SELECT detail FROM audit WHERE action = '{audit.PAYMENT_VOID}' AND json_valid(detail)) v,
                      json_each(v.detail, '$.reversed_remittances') j)
        UNION ALL
        SELECT {_REMITTANCE_IDS}, 'posted but no reversing journal lines'
          FROM remittances r {_REMITTANCE_JOINS}
         WHERE r.status = 'reversed' AND r.posted_batch_id IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM journal_lines j WHERE j.remittance_id = r.id AND j.entry = 'reverse')
        """,  # noqa: S608
    ),
    Check(
        "reversal_unbalanced",
        f"""
        SELECT {_REMITTANCE_IDS}, r.amount_cents AS expected_cents,
               j.debit AS debit_cents, j.credit AS credit_cents
          FROM (SELECT remittance_id, total(debit_cents) AS debit, total(credit_cents) AS credit
                  FROM journal_lines WHERE entry = 'reverse' GROUP BY remittance_id) j
          JOIN remittances r ON r.id = j.remittance_id {_REMITTANCE_JOINS}
         WHERE r.status = 'reversed' AND r.posted_batch_id IS NOT NULL
           AND (j.debit <> r.amount_cents OR j.credit <> r.amount_cents)
        """,  # noqa: S608
    ),
    Check(
        "posting_unbalanced",
        f"""
        SELECT {_REMITTANCE_IDS}, r.posted_batch_id AS batch_id, r.amount_cents AS expected_cents,
               coalesce(j.debit, 0) AS debit_cents, coalesce(j.credit, 0) AS credit_cents
          FROM remittances r {_REMITTANCE_JOINS}
          LEFT JOIN (SELECT remittance_id, total(debit_cents) AS debit, total(credit_cents) AS credit,
                            max(batch_id) AS max_batch, min(batch_id) AS min_batch
                       FROM journal_lines WHERE entry = 'post' GROUP BY remittance_id) j
                 ON j.remittance_id = r.id
         WHERE r.posted_batch_id IS NOT NULL
           AND (j.remittance_id IS NULL OR j.debit <> r.amount_cents OR j.credit <> r.amount_cents
                OR j.min_batch IS NOT r.posted_batch_id OR j.max_batch IS NOT r.posted_batch_id)
        """,  # noqa: S608
    ),
    Check(
        "journal_lines_unexpected",
        f"""
        SELECT {_REMITTANCE_IDS}, j.id AS journal_line_id, j.entry AS detail
          FROM journal_lines j
          JOIN remittances r ON r.id = j.remittance_id {_REMITTANCE_JOINS}
         WHERE r.posted_batch_id IS NULL OR r.status = 'ready'
            OR (j.entry = 'reverse' AND r.status <> 'reversed')
        """,  # noqa: S608
    ),
    Check(
        # A reversing entry is the mirror of the posting: on every account the remittance's lines net to zero.
        "reversal_not_mirrored",
        f"""
        SELECT {_REMITTANCE_IDS}, j.account AS detail, j.net AS actual_cents
          FROM (SELECT remittance_id, account, total(debit_cents) - total(credit_cents) AS net
                  FROM journal_lines
                 WHERE remittance_id IN (SELECT id FROM remittances
                                          WHERE status = 'reversed' AND posted_batch_id IS NOT NULL)
                 GROUP BY remittance_id, account) j
          JOIN remittances r ON r.id = j.remittance_id {_REMITTANCE_JOINS}
         WHERE r.status = 'reversed' AND r.posted_batch_id IS NOT NULL AND j.net <> 0
        """,  # noqa: S608
    ),
    Check(
        "journal_batch_unbalanced",
        """
        SELECT b.id AS batch_id, b.kind AS detail, total(j.debit_cents) AS debit_cents,
               total(j.credit_cents) AS credit_cents
          FROM posting_batches b JOIN journal_lines j ON j.batch_id = b.id
         GROUP BY b.id
        HAVING total(j.debit_cents) <> total(j.credit_cents) OR sum(j.entry <> b.kind) > 0
        """,
    ),
    Check(
        "manual_without_staff",
        f"""
        SELECT {_REMITTANCE_IDS}
          FROM remittances r {_REMITTANCE_JOINS}
         WHERE r.source = 'manual' AND (r.staff IS NULL OR trim(r.staff) = '' OR r.rule IS NOT NULL)
        """,  # noqa: S608
    ),
    Check(
        # Rule 7: every manual action is in the audit trail. A manual remittance is named by the
        # apply (or reallocate's apply) that made it, or is the rest an unapply kept (its detail).
        "manual_without_audit",
        f"""
        SELECT {_REMITTANCE_IDS}
          FROM remittances r {_REMITTANCE_JOINS}
         WHERE r.source = 'manual' AND r.id NOT IN (
               SELECT remittance_id FROM audit WHERE action = '{audit.APPLY}' AND remittance_id IS NOT NULL
               UNION ALL
               SELECT json_extract(detail, '$.kept_remittance_id')
                 FROM audit WHERE action = '{audit.UNAPPLY}' AND json_valid(detail)
                  AND json_extract(detail, '$.kept_remittance_id') IS NOT NULL)
        """,  # noqa: S608
    ),
    Check(
        "job_with_staff",
        f"""
        SELECT {_REMITTANCE_IDS}, r.job_run_id AS job_run_id
          FROM remittances r {_REMITTANCE_JOINS}
         WHERE r.source = 'job' AND (r.staff IS NOT NULL OR r.job_run_id IS NULL OR r.rule IS NULL)
        """,  # noqa: S608
    ),
    Check(
        "remittance_replacement_invalid",
        f"""
        SELECT {_REMITTANCE_IDS}, o.id AS replaced_id
          FROM remittances r {_REMITTANCE_JOINS}
          JOIN remittances o ON o.id = r.replaces_id
         WHERE o.status <> 'reversed' OR o.payment_id <> r.payment_id OR o.charge_id <> r.charge_id
            OR r.amount_cents >= o.amount_cents OR o.id >= r.id
        """,  # noqa: S608
    ),
    Check(
        "event_payment_without_event",
        """
        SELECT p.payment_key AS payment_id, cl.client_key AS client_id
          FROM payments p LEFT JOIN clients cl ON cl.id = p.client_id
         WHERE p.apply_to = 'event' AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = p.event_id)
        """,
    ),
    Check(
        "event_payment_on_deleted_event",
        """
        SELECT p.payment_key AS payment_id, e.event_key AS event_id
          FROM payments p JOIN events e ON e.id = p.event_id
         WHERE p.apply_to = 'event' AND p.status <> 'void' AND e.status = 'deleted'
           AND p.applied_cents < p.amount_cents
        """,
    ),
    Check(
        "event_client_mismatch",
        """
        SELECT p.payment_key AS payment_id, NULL AS charge_id, e.event_key AS event_id
          FROM payments p JOIN events e ON e.id = p.event_id
         WHERE e.client_id IS NOT p.client_id
        UNION ALL
        SELECT NULL, ch.charge_key, e.event_key
          FROM charges ch JOIN events e ON e.id = ch.event_id
         WHERE e.client_id IS NOT ch.client_id
        """,
    ),
    Check(
        # gl map refuses it; a ledger mapped before it did, or edited by hand, is told here.
        "gl_mappings_same_account",
        """
        SELECT 'gl_mappings' AS table_name FROM gl_mappings a JOIN gl_mappings b
            ON a.key = 'unapplied_default' AND b.key = 'self_pay_ar' AND a.account = b.account
        """,
    ),
    Check(
        "apply_to_invalid",
        """
        SELECT payment_key AS payment_id, apply_to AS detail FROM payments
         WHERE apply_to NOT IN ('oldest', 'specific', 'event')
            OR entered_apply_to NOT IN ('oldest', 'specific', 'event')
            OR status NOT IN ('ready', 'pending', 'void')
            OR (entered_apply_to = 'event' AND event_id IS NULL)
        """,
    ),
    Check(
        "date_invalid",
        " UNION ALL ".join([
            _bad_date("charges", "service_date", "charge_key", "charge_id"),
            _bad_date("payments", "received_date", "payment_key", "payment_id"),
            _bad_date("events", "scheduled_date", "event_key", "event_id"),
        ]),
    ),
    Check(
        # run-job only visits marked clients: work nobody marked would never be done.
        "job_work_unmarked",
        """
        SELECT cl.client_key AS client_id, p.payment_key AS payment_id
          FROM payments p JOIN clients cl ON cl.id = p.client_id
         WHERE cl.job_pending = 0 AND p.status = 'ready' AND p.applied_cents < p.amount_cents
           AND ((p.apply_to = 'oldest' AND EXISTS (
                    SELECT 1 FROM charges ch WHERE ch.client_id = p.client_id AND ch.payer <> 'insurance'
                       AND ch.applied_cents < ch.amount_cents))
             OR (p.apply_to = 'event' AND (EXISTS (
                    SELECT 1 FROM charges ch WHERE ch.event_id = p.event_id AND ch.payer <> 'insurance'
                       AND ch.applied_cents < ch.amount_cents)
                 OR EXISTS (SELECT 1 FROM events e WHERE e.id = p.event_id AND e.status <> 'scheduled'))))
        """,
    ),
    Check(
        "job_run_inconsistent",
        """
        SELECT id AS job_run_id, status AS detail FROM job_runs
         WHERE (status = 'running' AND finished_at IS NOT NULL)
            OR (status IN ('done', 'failed') AND finished_at IS NULL)  -- an interrupted run: either
            OR status NOT IN ('running', 'done', 'failed', 'interrupted')
        """,
    ),
)


def run(conn: sqlite3.Connection, check: Check) -> list[dict[str, Any]]:
    """The violations of one check, as rows of named columns (NULL columns left out)."""
    try:
        cursor = conn.execute(check.sql, check.params)
        names = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
    except sqlite3.DatabaseError as error:
        raise CheckQueryFailed(check.code, str(error)) from None
    return [{k: v for k, v in zip(names, row, strict=True) if v is not None} for row in rows]


def integrity_errors(conn: sqlite3.Connection, limit: int = 100) -> list[str]:
    """PRAGMA integrity_check: [] when the file is sound, else its messages (at most `limit`)."""
    try:
        rows = conn.execute(f"PRAGMA integrity_check({int(limit):d})").fetchall()
    except sqlite3.DatabaseError as error:
        return [str(error)]
    messages = [str(row[0]) for row in rows]
    return [] if messages == ["ok"] else messages


def foreign_key_errors(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """PRAGMA foreign_key_check: rows that refer to a row that does not exist."""
    try:
        rows = conn.execute("PRAGMA foreign_key_check").fetchall()
    except sqlite3.DatabaseError as error:
        raise CheckQueryFailed("foreign_key_violation", str(error)) from None
    return [
        {"table_name": str(table), "row_id": rowid, "detail": str(parent)}
        for table, rowid, parent, _fkid in rows
    ]


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    """How many clients, payments, charges and remittances the check covered."""
    try:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM clients), (SELECT count(*) FROM payments),"
            " (SELECT count(*) FROM charges), (SELECT count(*) FROM remittances)"
        ).fetchone()
    except sqlite3.DatabaseError as error:
        raise CheckQueryFailed("counts", str(error)) from None
    return dict(zip(("clients", "payments", "charges", "remittances"), map(int, row), strict=True))
