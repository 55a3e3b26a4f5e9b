"""The spec's closed lists of words, in the spec's order: one place for the values a CSV cell,
an option or a ledger column may take. The schema's CHECKs and the CLI's choice enums say the
same (tests/test_vocabulary.py holds them to it)."""

from __future__ import annotations

PAYERS = ("self_pay", "patient_resp", "insurance")
SELF_PAY_PAYERS = ("self_pay", "patient_resp")  # the charges a client's payment may pay
APPLY_TO = ("oldest", "specific", "event")
MODES = ("oldest", "specific")  # what a clerk may switch a payment to: an event is attached at entry
METHODS = ("cash", "check", "card", "eft", "other")
PAYMENT_STATUSES = ("ready", "pending", "void")
EVENT_STATUSES = ("scheduled", "done", "deleted")
REMITTANCE_STATUSES = ("ready", "posted", "reversed")
