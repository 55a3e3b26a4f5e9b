"""PURE: the APPLY_CLIENT_PAYMENTS plan. No SQL, no I/O, no clock.

Given the open payments (ready, `oldest` or `event`, money unapplied) and the open self-pay
charges of some clients, compute what the job creates:

- rule 4 first: each event payment, in order of (received_date, id), is applied to the open
  charges that resulted from its event, by (service_date, id). Then, if money is left and the
  event is `done` (or `deleted`), the payment becomes `specific` (a Conversion).
  A payment whose event is deleted is not applied at all: it only becomes `specific` (a defence:
  `event delete` and `unapply` convert such payments at once, and check reports one left over).
- rule 2: each oldest payment, in order of (received_date, id), is spread over all of the
  client's open charges by (service_date, id) as far as it reaches; the rest stays unapplied.

One Allocation per (payment, charge) pair touched. Clients never share money, so the plan of
a set of clients is the concatenation of each client's plan: that is what lets the job work
in chunks of clients.

The records are NamedTuples: a run builds hundreds of thousands of them, and a frozen
dataclass costs about five times as much to construct.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from operator import attrgetter
from typing import NamedTuple

from payalloc.vocabulary import EVENT_STATUSES

OLDEST = "oldest"
EVENT = "event"


class OpenPayment(NamedTuple):
    """A ready payment with money unapplied that the job may apply (mode oldest or event)."""

    id: int  # internal id: the order of entry
    client_id: int
    received_date: str
    unapplied_cents: int
    apply_to: str  # 'oldest' or 'event'
    event_id: int | None = None
    event_status: str | None = None  # the event's status, for event payments


class OpenCharge(NamedTuple):
    """A self-pay charge with a balance left."""

    id: int
    client_id: int
    service_date: str
    balance_cents: int
    event_id: int | None = None


class Allocation(NamedTuple):
    """One remittance to create."""

    payment_id: int
    charge_id: int
    client_id: int
    amount_cents: int
    rule: str  # 'oldest' or 'event'


class Conversion(NamedTuple):
    """An event payment whose apply-to becomes `specific`: the rest waits for the clerk."""

    payment_id: int
    client_id: int
    event_id: int
    event_status: str  # 'done' or 'deleted'
    unapplied_cents: int  # what is left on the payment after this plan


class Plan(NamedTuple):
    allocations: tuple[Allocation, ...]
    conversions: tuple[Conversion, ...]

    @property
    def amount_cents(self) -> int:
        return sum(a.amount_cents for a in self.allocations)

    @property
    def clients(self) -> frozenset[int]:
        """Clients that receive at least one remittance."""
        return frozenset(a.client_id for a in self.allocations)


def _check(payments: list[OpenPayment], charges: list[OpenCharge]) -> None:
    for p in payments:
        if p.unapplied_cents <= 0:
            raise ValueError(f"payment {p.id} has nothing unapplied")
        if p.apply_to == EVENT:
            if p.event_id is None or p.event_status not in EVENT_STATUSES:
                raise ValueError(f"event payment {p.id} needs its event and the event's status")
        elif p.apply_to != OLDEST:
            raise ValueError(f"payment {p.id} is not applied by the job (apply-to {p.apply_to})")
    for c in charges:
        if c.balance_cents <= 0:
            raise ValueError(f"charge {c.id} has no balance")
    if len({p.id for p in payments}) != len(payments) or len({c.id for c in charges}) != len(charges):
        raise ValueError("payments and charges must be unique")


def plan_job(payments: Iterable[OpenPayment], charges: Iterable[OpenCharge]) -> Plan:
    """The job's plan for these clients: rule 4, then rule 2, client by client."""
    payments = list(payments)
    charges = list(charges)
    _check(payments, charges)
    payments_by_client: dict[int, list[OpenPayment]] = defaultdict(list)
    charges_by_client: dict[int, list[OpenCharge]] = defaultdict(list)
    for p in payments:
        payments_by_client[p.client_id].append(p)
    for c in charges:
        charges_by_client[c.client_id].append(c)
    allocations: list[Allocation] = []
    conversions: list[Conversion] = []
    for client_id in sorted(payments_by_client):
        _plan_client(
            client_id, payments_by_client[client_id], charges_by_client.get(client_id, []),
            allocations, conversions,
        )
    return Plan(tuple(allocations), tuple(conversions))


_CHARGE_ORDER = attrgetter("service_date", "id")
_PAYMENT_ORDER = attrgetter("received_date", "id")


def _plan_client(
    client_id: int,
    payments: list[OpenPayment],
    charges: list[OpenCharge],
    allocations: list[Allocation],
    conversions: list[Conversion],
) -> None:
    charges = sorted(charges, key=_CHARGE_ORDER)
    balance = [c.balance_cents for c in charges]
    by_event: dict[int, list[int]] = defaultdict(list)  # event -> indexes into charges, in order
    for index, charge in enumerate(charges):
        if charge.event_id is not None:
            by_event[charge.event_id].append(index)
    ordered = sorted(payments, key=_PAYMENT_ORDER)

    # Rule 4: event payments first.
    for p in ordered:
        if p.apply_to != EVENT:
            continue
        assert p.event_id is not None and p.event_status is not None
        left = p.unapplied_cents
        if p.event_status != "deleted":
            for index in by_event.get(p.event_id, ()):
                if left == 0:
                    break
                amount = min(left, balance[index])
                if amount:
                    balance[index] -= amount
                    left -= amount
                    allocations.append(Allocation(p.id, charges[index].id, client_id, amount, EVENT))
        if left and p.event_status in ("done", "deleted"):
            conversions.append(Conversion(p.id, client_id, p.event_id, p.event_status, left))

    # Rule 2: oldest payments, first in first out over all open charges.
    cursor = 0
    for p in ordered:
        if p.apply_to != OLDEST:
            continue
        left = p.unapplied_cents
        while left and cursor < len(charges):
            if balance[cursor] == 0:
                cursor += 1
                continue
            amount = min(left, balance[cursor])
            balance[cursor] -= amount
            left -= amount
            allocations.append(Allocation(p.id, charges[cursor].id, client_id, amount, OLDEST))
