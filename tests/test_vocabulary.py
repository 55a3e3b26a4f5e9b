"""The spec's closed lists (payalloc/vocabulary.py) are what the ledger's CHECKs and the CLI's
choices accept: a value added in one place and not the others would be refused by the
database after the CLI accepted it, or offered by --help and refused by the service."""

from __future__ import annotations

import re
import sqlite3
from enum import StrEnum

import pytest

from payalloc import vocabulary
from payalloc.cli.common import ApplyTo
from payalloc.cli.events import EventStatus
from payalloc.cli.payments import Method, Mode, PaymentStatus
from payalloc.cli.remittances import RemittanceStatus


@pytest.mark.parametrize(("choices", "words"), [
    (ApplyTo, vocabulary.APPLY_TO),
    (Mode, vocabulary.MODES),
    (Method, vocabulary.METHODS),
    (PaymentStatus, vocabulary.PAYMENT_STATUSES),
    (EventStatus, vocabulary.EVENT_STATUSES),
    (RemittanceStatus, vocabulary.REMITTANCE_STATUSES),
])
def test_cli_choices_are_the_vocabulary(choices: type[StrEnum], words: tuple[str, ...]) -> None:
    assert tuple(choices) == words


def _allowed(conn: sqlite3.Connection, table: str, column: str) -> tuple[str, ...]:
    """The words the table's CHECKs compare a column with (`column = 'a' OR column = 'b' ...`),
    in the order they first appear."""
    (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
    return tuple(dict.fromkeys(re.findall(rf"\b{column} = '([a-z_]+)'", sql)))


@pytest.mark.parametrize(("table", "column", "words"), [
    ("charges", "payer", vocabulary.PAYERS),
    ("payments", "apply_to", vocabulary.APPLY_TO),
    ("payments", "entered_apply_to", vocabulary.APPLY_TO),
    ("payments", "method", vocabulary.METHODS),
    ("payments", "status", vocabulary.PAYMENT_STATUSES),
    ("events", "status", vocabulary.EVENT_STATUSES),
    ("remittances", "status", vocabulary.REMITTANCE_STATUSES),
])
def test_ledger_checks_are_the_vocabulary(conn: sqlite3.Connection, table: str, column: str,
                                          words: tuple[str, ...]) -> None:
    assert _allowed(conn, table, column) == words


def test_self_pay_payers_are_payers_but_insurance() -> None:
    assert tuple(p for p in vocabulary.PAYERS if p != "insurance") == vocabulary.SELF_PAY_PAYERS
