"""PURE: journal lines for posting and reversing remittances. No SQL, no I/O, no clock.

Posting a remittance moves its money out of the liability for unapplied client payments
and settles the self-pay receivable: debit `unapplied_default`, credit `self_pay_ar`.
A reversal never edits those lines: it writes their mirror image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

REQUIRED_MAPPINGS = ("unapplied_default", "self_pay_ar")


@dataclass(frozen=True)
class JournalLine:
    remittance_id: int
    entry: str  # 'post' or 'reverse'
    account: str
    debit_cents: int
    credit_cents: int


def missing_mappings(mappings: Mapping[str, str]) -> list[str]:
    """The GL mappings that posting needs and that are not configured, in a stable order."""
    return [key for key in REQUIRED_MAPPINGS if not mappings.get(key)]


def posting_lines(remittance_id: int, amount_cents: int, mappings: Mapping[str, str]) -> list[JournalLine]:
    assert amount_cents > 0
    assert not missing_mappings(mappings)
    return [
        JournalLine(remittance_id, "post", mappings["unapplied_default"], amount_cents, 0),
        JournalLine(remittance_id, "post", mappings["self_pay_ar"], 0, amount_cents),
    ]


def reversing_lines(posted: Sequence[JournalLine]) -> list[JournalLine]:
    """The mirror of a remittance's posting lines: same accounts, debit and credit swapped,
    so a later change of the mappings cannot unbalance the reversal."""
    assert posted and all(line.entry == "post" for line in posted)
    return [
        JournalLine(line.remittance_id, "reverse", line.account, line.credit_cents, line.debit_cents)
        for line in posted
    ]
