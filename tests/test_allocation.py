"""The pure planner of the job (rules 2 and 4) against an independent reference model.

The reference does not walk payments and charges with a cursor as the planner does: it lays
the payments end to end on a line of cents, in their order, and the charges likewise, and
gives each (payment, charge) pair the length of their overlap. That is what "spread each payment
over the charges oldest first, as far as it reaches" means.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payalloc.allocation import Allocation, Conversion, OpenCharge, OpenPayment, plan_job

Pair = tuple[int, int]


def overlap_allocation(
    payments: Sequence[tuple[int, int]], charges: Sequence[tuple[int, int]]
) -> dict[Pair, int]:
    """(payment id, amount) and (charge id, balance), each in order -> amount per pair."""
    out: dict[Pair, int] = {}
    p_start = 0
    for pid, p_amount in payments:
        c_start = 0
        for cid, c_amount in charges:
            amount = min(p_start + p_amount, c_start + c_amount) - max(p_start, c_start)
            if amount > 0:
                out[(pid, cid)] = amount
            c_start += c_amount
        p_start += p_amount
    return out


def reference(
    payments: Sequence[OpenPayment], charges: Sequence[OpenCharge]
) -> tuple[dict[Pair, tuple[int, str]], set[tuple[int, int]]]:
    """-> ({(payment, charge): (amount, rule)}, {(payment, unapplied left)} converted)."""
    result: dict[Pair, tuple[int, str]] = {}
    converted: set[tuple[int, int]] = set()
    clients = {p.client_id for p in payments}
    for client in clients:
        pays = sorted((p for p in payments if p.client_id == client), key=lambda p: (p.received_date, p.id))
        chs = sorted((c for c in charges if c.client_id == client), key=lambda c: (c.service_date, c.id))
        balance = {c.id: c.balance_cents for c in chs}
        applied: dict[int, int] = defaultdict(int)
        for event in {p.event_id for p in pays if p.apply_to == "event"}:
            eps = [p for p in pays if p.apply_to == "event" and p.event_id == event and p.event_status != "deleted"]
            ecs = [c for c in chs if c.event_id == event]
            for (pid, cid), amount in overlap_allocation(
                [(p.id, p.unapplied_cents) for p in eps], [(c.id, c.balance_cents) for c in ecs]
            ).items():
                result[(pid, cid)] = (amount, "event")
                balance[cid] -= amount
                applied[pid] += amount
        for p in pays:
            left = p.unapplied_cents - applied[p.id]
            if p.apply_to == "event" and p.event_status in ("done", "deleted") and left:
                converted.add((p.id, left))
        olds = [p for p in pays if p.apply_to == "oldest"]
        for (pid, cid), amount in overlap_allocation(
            [(p.id, p.unapplied_cents) for p in olds], [(c.id, balance[c.id]) for c in chs if balance[c.id]]
        ).items():
            result[(pid, cid)] = (amount, "oldest")
    return result, converted


DATES = [f"2026-01-{d:02d}" for d in range(1, 6)]  # few dates: same-day ties are common


@st.composite
def ledgers(draw: st.DrawFn) -> tuple[list[OpenPayment], list[OpenCharge]]:
    n_clients = draw(st.integers(1, 3))
    events = {c: list(range(c * 10, c * 10 + draw(st.integers(0, 3)))) for c in range(1, n_clients + 1)}
    status = {e: draw(st.sampled_from(["scheduled", "done", "deleted"])) for es in events.values() for e in es}
    n_charges = draw(st.integers(0, 12))
    charge_ids = draw(st.lists(st.integers(1, 10_000), min_size=n_charges, max_size=n_charges, unique=True))
    charges = []
    for cid in charge_ids:
        client = draw(st.integers(1, n_clients))
        event = draw(st.none() | st.sampled_from(events[client])) if events[client] else None
        charges.append(OpenCharge(cid, client, draw(st.sampled_from(DATES)), draw(st.integers(1, 20_000)), event))
    n_payments = draw(st.integers(0, 8))
    payment_ids = draw(st.lists(st.integers(1, 10_000), min_size=n_payments, max_size=n_payments, unique=True))
    payments = []
    for pid in payment_ids:
        client = draw(st.integers(1, n_clients))
        amount = draw(st.integers(1, 40_000))  # often more than the charges: overpayments
        date = draw(st.sampled_from(DATES))
        if events[client] and draw(st.booleans()):
            event = draw(st.sampled_from(events[client]))
            payments.append(OpenPayment(pid, client, date, amount, "event", event, status[event]))
        else:
            payments.append(OpenPayment(pid, client, date, amount, "oldest"))
    return payments, charges


def as_pairs(allocations: Sequence[Allocation]) -> dict[Pair, tuple[int, str]]:
    pairs = {(a.payment_id, a.charge_id): (a.amount_cents, a.rule) for a in allocations}
    assert len(pairs) == len(allocations), "one remittance per (payment, charge) pair"
    return pairs


@given(ledgers())
def test_plan_equals_reference_model(ledger: tuple[list[OpenPayment], list[OpenCharge]]) -> None:
    payments, charges = ledger
    plan = plan_job(payments, charges)
    expected, converted = reference(payments, charges)
    assert as_pairs(plan.allocations) == expected
    assert {(c.payment_id, c.unapplied_cents) for c in plan.conversions} == converted


@given(ledgers())
def test_plan_never_over_allocates_and_stays_within_a_client(
    ledger: tuple[list[OpenPayment], list[OpenCharge]],
) -> None:
    payments, charges = ledger
    plan = plan_job(payments, charges)
    pay = {p.id: p for p in payments}
    chg = {c.id: c for c in charges}
    per_payment: dict[int, int] = defaultdict(int)
    per_charge: dict[int, int] = defaultdict(int)
    for a in plan.allocations:
        assert a.amount_cents > 0
        assert pay[a.payment_id].client_id == chg[a.charge_id].client_id == a.client_id
        if a.rule == "event":
            assert pay[a.payment_id].event_id == chg[a.charge_id].event_id
            assert pay[a.payment_id].event_status != "deleted"
        per_payment[a.payment_id] += a.amount_cents
        per_charge[a.charge_id] += a.amount_cents
    assert all(per_payment[p] <= pay[p].unapplied_cents for p in per_payment)
    assert all(per_charge[c] <= chg[c].balance_cents for c in per_charge)
    # Rule 2 leaves money unapplied only when the client has no open charge left.
    for p in payments:
        if p.apply_to == "oldest" and per_payment[p.id] < p.unapplied_cents:
            assert all(per_charge[c.id] == c.balance_cents for c in charges if c.client_id == p.client_id)
    # The plan of several clients is the plans of each client: what lets the job work in chunks.
    for client in {p.client_id for p in payments}:
        alone = plan_job([p for p in payments if p.client_id == client], [c for c in charges if c.client_id == client])
        assert alone.allocations == tuple(a for a in plan.allocations if a.client_id == client)


def test_oldest_first_with_same_day_charges_by_order_of_entry() -> None:
    charges = [
        OpenCharge(7, 1, "2026-01-02", 5000),
        OpenCharge(3, 1, "2026-01-02", 5000),  # same day, entered first
        OpenCharge(9, 1, "2026-01-01", 2000),
    ]
    payments = [OpenPayment(2, 1, "2026-02-01", 8000, "oldest"), OpenPayment(1, 1, "2026-02-01", 1000, "oldest")]
    plan = plan_job(payments, charges)
    assert [(a.payment_id, a.charge_id, a.amount_cents) for a in plan.allocations] == [
        (1, 9, 1000), (2, 9, 1000), (2, 3, 5000), (2, 7, 2000),
    ]
    assert plan.amount_cents == 9000 and plan.clients == frozenset({1})


def test_event_payments_first_then_oldest_and_conversions() -> None:
    charges = [OpenCharge(1, 1, "2026-01-01", 3000), OpenCharge(2, 1, "2026-01-05", 5000, event_id=50)]
    payments = [
        OpenPayment(1, 1, "2026-01-01", 9000, "oldest"),  # received first, but rule 4 goes first
        OpenPayment(2, 1, "2026-01-09", 2000, "event", 50, "done"),
        OpenPayment(3, 1, "2026-01-09", 4000, "event", 50, "done"),
        OpenPayment(4, 1, "2026-01-09", 4000, "event", 60, "scheduled"),
        OpenPayment(5, 1, "2026-01-09", 4000, "event", 70, "deleted"),
    ]
    plan = plan_job(payments, charges)
    assert [(a.payment_id, a.charge_id, a.amount_cents, a.rule) for a in plan.allocations] == [
        (2, 2, 2000, "event"), (3, 2, 3000, "event"), (1, 1, 3000, "oldest"),
    ]
    assert plan.conversions == (Conversion(3, 1, 50, "done", 1000), Conversion(5, 1, 70, "deleted", 4000))


def test_planner_refuses_what_the_job_must_not_apply() -> None:
    with pytest.raises(ValueError, match="not applied by the job"):
        plan_job([OpenPayment(1, 1, "2026-01-01", 100, "specific")], [])
    with pytest.raises(ValueError, match="nothing unapplied"):
        plan_job([OpenPayment(1, 1, "2026-01-01", 0, "oldest")], [])
    with pytest.raises(ValueError, match="needs its event"):
        plan_job([OpenPayment(1, 1, "2026-01-01", 100, "event", 5)], [])
