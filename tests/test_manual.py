"""The pure check of a clerk's allocations (rule 3), alone: no ledger."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from payalloc.manual import (
    ChargeState,
    Line,
    PaymentState,
    RawLine,
    check,
    merge,
    pair_lines,
    parse_lines,
)


def pay(key: str = "Y", unapplied: int = 6000, client: str = "C-1", status: str = "ready",
        apply_to: str = "specific") -> PaymentState:
    return PaymentState(key, client, status, apply_to, unapplied)


def charge(key: str, balance: int, client: str = "C-1", payer: str = "self_pay") -> ChargeState:
    return ChargeState(key, client, payer, balance)


def reasons(problems: list) -> list[str]:  # type: ignore[type-arg]
    return [str(p) for p in problems]


def test_the_seed_example_reports_both_problems() -> None:
    # The Apply Payments screen's example: 200.00 against a 187.00 charge balance, and the two
    # allocations together (220.00) against 60.00 unapplied.
    lines = [Line("argument 1", "Y", "X", 20000), Line("argument 2", "Y", "Z", 2000)]
    problems = check(lines, {"Y": pay()}, {"X": charge("X", 18700), "Z": charge("Z", 5000)})
    assert reasons(problems) == [
        "200.00 exceeds the 187.00 balance of charge X",
        "220.00 in total exceeds the 60.00 unapplied on payment Y",
    ]


def test_a_valid_set_has_no_problems_and_merges_pairs() -> None:
    lines = [Line("a", "Y", "X", 1000), Line("b", "Y", "Z", 2000), Line("c", "Y", "X", 500)]
    assert check(lines, {"Y": pay()}, {"X": charge("X", 1500), "Z": charge("Z", 2000)}) == []
    assert [(a.payment_key, a.charge_key, a.amount_cents) for a in merge(lines)] == [
        ("Y", "X", 1500), ("Y", "Z", 2000),
    ]


def test_single_line_over_the_unapplied_has_no_in_total() -> None:
    problems = check([Line("a", "Y", "X", 7000)], {"Y": pay()}, {"X": charge("X", 9000)})
    assert reasons(problems) == ["70.00 exceeds the 60.00 unapplied on payment Y"]


def test_nothing_left_is_said_in_words_not_as_arithmetic() -> None:
    """A payment used up, a charge paid in full: not "1.00 exceeds the 0.00 unapplied"."""
    problems = check([Line("a", "Y", "X", 100)], {"Y": pay("Y", 0)}, {"X": charge("X", 0)})
    assert reasons(problems) == ["charge X is paid in full: nothing of 1.00 can go to it",
                                 "payment Y is fully allocated: it has nothing left to apply"]


def test_several_lines_to_one_charge_over_its_balance() -> None:
    lines = [Line("a", "Y", "X", 1000), Line("b", "Y", "X", 1000)]
    problems = check(lines, {"Y": pay()}, {"X": charge("X", 1500)})
    assert reasons(problems) == ["20.00 in total exceeds the 15.00 balance of charge X"]


def test_every_kind_of_refusal_is_reported_once_each() -> None:
    lines = [
        Line("1", "P-PEND", "X", 100),
        Line("2", "P-PEND", "X", 100),  # same problem: reported once
        Line("3", "P-VOID", "X", 100),
        Line("4", "P-OLD", "X", 100),
        Line("5", "P-EV", "X", 100),
        Line("6", "P-NONE", "X", 100),
        Line("7", "Y", "CH-NONE", 100),
        Line("8", "Y", "INS", 100),
        Line("9", "Y", "OTHER", 100),
    ]
    payments = {
        "Y": pay(),
        "P-PEND": pay("P-PEND", status="pending"),
        "P-VOID": pay("P-VOID", status="void"),
        "P-OLD": pay("P-OLD", apply_to="oldest"),
        "P-EV": pay("P-EV", apply_to="event"),
    }
    charges = {"X": charge("X", 500), "INS": charge("INS", 500, payer="insurance"),
               "OTHER": charge("OTHER", 500, client="C-2")}
    got = reasons(check(lines, payments, charges))
    assert got == [
        "payment P-PEND is pending; reconcile it first: payalloc payment ready P-PEND",
        "payment P-VOID is void",
        "payment P-OLD is applied to the oldest charges by run-job, not by hand; to allocate it yourself,"
        " change its mode first: payalloc payment mode P-OLD specific",
        "payment P-EV is applied to its event by run-job, not by hand; to allocate it yourself,"
        " change its mode first: payalloc payment mode P-EV specific",
        "payment P-NONE is not in the ledger",
        "charge CH-NONE is not in the ledger (payalloc client show C-1 lists the open charges)",
        "charge INS is billed to insurance and is never allocated client payments",
        "charge OTHER belongs to client C-2, not to client C-1 of payment Y",
    ]


def test_patient_responsibility_charges_are_allocatable() -> None:
    assert check([Line("a", "Y", "X", 100)], {"Y": pay()}, {"X": charge("X", 100, payer="patient_resp")}) == []


def test_malformed_pairs_and_amounts_are_problems_with_their_place() -> None:
    raw, problems = pair_lines("Y", ["X=10.00", "X", "=5", "Z=", "W=1.234", "V=abc", "K=v=1.00"])
    assert reasons(problems) == [
        "argument 2: 'X' is not CHARGE_ID=AMOUNT (for example CH-2013=60.00)",
        "argument 3: '=5' is not CHARGE_ID=AMOUNT (for example CH-2013=60.00)",
        "argument 4: 'Z=' is not CHARGE_ID=AMOUNT (for example CH-2013=60.00)",
    ]
    lines, more = parse_lines(raw)
    assert [(x.charge_key, x.amount_cents) for x in lines] == [("X", 1000), ("K=v", 100)]
    assert reasons(more) == [
        "argument 5 (W=1.234): '1.234' has more than 2 decimals: an amount is in whole cents, like 1,234.50",
        "argument 6 (V=abc): 'abc' is not an amount like 1,234.50",
    ]


def test_a_spaced_amount_is_quoted_a_name_is_not_and_both_read_as_sentences() -> None:
    raw, problems = pair_lines("Y", ["X=$ 5", "X=5.00 USD", "X=Jane Doe", "Jane Doe"])
    assert reasons(problems) == ["argument 4: the value (not shown: it may be a name) is not CHARGE_ID=AMOUNT"
                                 " (for example CH-2013=60.00)"]
    assert reasons(parse_lines(raw)[1]) == [
        "argument 1 (X=$ 5): '$ 5' is not an amount like 1,234.50",
        "argument 2 (X=5.00 USD): '5.00 USD' is not an amount like 1,234.50",
        "argument 3: the value (not shown: it may be a name) is not an amount like 1,234.50",
    ]


def test_zero_and_blank_ids_are_refused() -> None:
    lines, problems = parse_lines([RawLine("line 2", "Y", "X", "0.00"), RawLine("line 3", " ", "X", "1")])
    assert lines == []
    assert reasons(problems) == ["line 2: amount must be greater than 0.00", "line 3: payment_id is empty"]


# --- properties ------------------------------------------------------------------------------------

KEYS_P = ["P1", "P2"]
KEYS_C = ["A", "B", "C"]


@given(
    unapplied=st.lists(st.integers(0, 5000), min_size=2, max_size=2),
    balances=st.lists(st.integers(0, 5000), min_size=3, max_size=3),
    lines=st.lists(
        st.tuples(st.sampled_from(KEYS_P), st.sampled_from(KEYS_C), st.integers(1, 4000)), max_size=8
    ),
)
def test_check_accepts_exactly_what_keeps_every_figure_non_negative(
    unapplied: list[int], balances: list[int], lines: list[tuple[str, str, int]]
) -> None:
    payments = {k: pay(k, u) for k, u in zip(KEYS_P, unapplied, strict=True)}
    charges = {k: charge(k, b) for k, b in zip(KEYS_C, balances, strict=True)}
    set_ = [Line(str(i), p, c, a) for i, (p, c, a) in enumerate(lines)]
    problems = check(set_, payments, charges)
    # Reference model: apply the merged set and see whether any figure goes negative (rule 1).
    left_p = dict(zip(KEYS_P, unapplied, strict=True))
    left_c = dict(zip(KEYS_C, balances, strict=True))
    for alloc in merge(set_):
        left_p[alloc.payment_key] -= alloc.amount_cents
        left_c[alloc.charge_key] -= alloc.amount_cents
    over = [k for k, v in left_p.items() if v < 0] + [k for k, v in left_c.items() if v < 0]
    assert (problems == []) == (over == [])
    # Each over-allocated payment or charge is named in exactly one problem.
    for key in over:
        assert sum(bool(re.search(rf"(?:payment|charge) {key}\b", str(p))) for p in problems) == 1


@given(st.lists(st.tuples(st.sampled_from(KEYS_P), st.sampled_from(KEYS_C), st.integers(1, 10**9))))
def test_merge_keeps_the_total_and_gives_one_allocation_per_pair(lines: list[tuple[str, str, int]]) -> None:
    set_ = [Line("", p, c, a) for p, c, a in lines]
    merged = merge(set_)
    assert sum(a.amount_cents for a in merged) == sum(a for _, _, a in lines)
    pairs = [(a.payment_key, a.charge_key) for a in merged]
    assert len(pairs) == len(set(pairs))
