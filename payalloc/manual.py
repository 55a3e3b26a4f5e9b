"""PURE: check a set of manual allocations (rule 3) before anything is written.

Plain values in, a list of problems out; no SQL, no I/O, no clock. The whole set is judged
together, so a clerk sees every reason at once (as on the Apply Payments screen): totals per
payment against its unapplied amount, totals per charge against its balance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from payalloc.errors import InputError, Problem
from payalloc.ids import parse_id, parsed, prose, unknown, unquoted
from payalloc.money import format_cents, parse_cents
from payalloc.vocabulary import SELF_PAY_PAYERS


@dataclass(frozen=True)
class RawLine:
    """One allocation as the clerk typed it: nothing checked yet."""

    where: str  # "argument 2", "line 3": where the clerk finds it again
    payment_key: str
    charge_key: str
    amount: str
    number: int = 0  # the argument's or the file line's number: problems are listed in that order


@dataclass(frozen=True)
class Line:
    """One well-formed allocation."""

    where: str
    payment_key: str
    charge_key: str
    amount_cents: int
    number: int = 0


@dataclass(frozen=True)
class PaymentState:
    key: str
    client_key: str
    status: str  # ready, pending, void
    apply_to: str  # oldest, specific, event
    unapplied_cents: int


@dataclass(frozen=True)
class ChargeState:
    key: str
    client_key: str
    payer: str
    balance_cents: int


@dataclass(frozen=True)
class ManualAllocation:
    """What will be written: one remittance per (payment, charge) pair of the set."""

    payment_key: str
    charge_key: str
    amount_cents: int
    wheres: tuple[str, ...] = ()  # the lines added up into it (more than one: a file named the pair again)


def split_pair(text: str) -> tuple[str, str]:
    """`CH-2013=60.00` -> ("CH-2013", "60.00"). The amount never holds '=', so split at the last one."""
    charge, sep, amount = text.rpartition("=")
    if not sep or not charge.strip() or not amount.strip():
        raise InputError(f"'{text}' is not CHARGE_ID=AMOUNT (for example CH-2013=60.00)")
    return charge, amount


def pair_lines(payment_key: str, pairs: Sequence[str]) -> tuple[list[RawLine], list[Problem]]:
    """Command-line pairs for one payment; malformed pairs become problems, not exceptions."""
    lines: list[RawLine] = []
    problems: list[Problem] = []
    for number, pair in enumerate(pairs, start=1):
        named = any(prose(part) for part in pair.split("="))  # a name typed in it ("CH-1=Jane Doe") is not quoted
        where = f"argument {number}" if named else f"argument {number} ({pair})"
        try:
            charge, amount = split_pair(pair)
        except InputError as error:
            problems.append(Problem(f"argument {number}", unquoted(error, pair), number))
            continue
        lines.append(RawLine(where, payment_key, charge, amount, number))
    return lines, problems


def pair_set(payment_key: str, pairs: Sequence[str]) -> tuple[list[Line], list[Problem]]:
    """Command-line pairs for one payment, parsed, each charge at most once."""
    raw, problems = pair_lines(payment_key, pairs)
    lines, more = parse_lines(raw)
    lines, repeated = once_per_charge(lines)
    return lines, problems + more + repeated


def once_per_charge(lines: Sequence[Line]) -> tuple[list[Line], list[Problem]]:
    """The lines without those naming a (payment, charge) pair again, and a problem for each of those.

    A clerk who types a charge twice on the command line most likely meant another charge: adding
    the amounts up would allocate money where it was not meant to go. (A file's rows are added up,
    see `merge`: an export may well hold several rows for one charge.)
    """
    first: dict[tuple[str, str], Line] = {}
    problems: list[Problem] = []
    for line in lines:
        earlier = first.setdefault((line.payment_key, line.charge_key), line)
        if earlier is not line:
            problems.append(Problem(line.where, f"charge {line.charge_key} is already given in {earlier.where};"
                                                " give each charge once, with its whole amount", line.number))
    return list(first.values()), problems


def parse_lines(raw: Sequence[RawLine]) -> tuple[list[Line], list[Problem]]:
    """Ids and amounts checked one line at a time."""
    lines: list[Line] = []
    problems: list[Problem] = []
    for r in raw:
        try:  # a cell that reads as a name (columns swapped) is not quoted: ids.unquoted
            payment = parsed(parse_id, r.payment_key, "payment_id")
            charge = parsed(parse_id, r.charge_key, "charge_id")
            cents = parsed(parse_cents, r.amount)
        except InputError as error:
            problems.append(Problem(r.where, str(error), r.number))
            continue
        lines.append(Line(r.where, payment, charge, cents, r.number))
    return lines, problems


def check(
    lines: Sequence[Line],
    payments: Mapping[str, PaymentState],
    charges: Mapping[str, ChargeState],
    *,
    locate: bool = False,
) -> list[Problem]:
    """Every reason the set cannot be applied as a whole; empty when it can.

    `payments` and `charges` hold the ledger's current state of the ids the lines name
    (an id missing from them is unknown). Each problem is reported once, in line order; with
    `locate` (the lines of a file) a problem of an id names the first line where it appears.
    """
    problems: list[Problem] = []
    seen: set[str] = set()
    payment_total: dict[str, int] = {}
    payment_lines: dict[str, int] = {}
    charge_total: dict[str, int] = {}
    charge_lines: dict[str, int] = {}
    for line in lines:
        refusals = _line_refusals(line, payments.get(line.payment_key), charges.get(line.charge_key))
        for tag, reason in refusals:
            if tag not in seen:
                seen.add(tag)
                problems.append(Problem(line.where, reason, line.number) if locate else Problem("", reason))
        if refusals:
            continue
        payment_total[line.payment_key] = payment_total.get(line.payment_key, 0) + line.amount_cents
        payment_lines[line.payment_key] = payment_lines.get(line.payment_key, 0) + 1
        charge_total[line.charge_key] = charge_total.get(line.charge_key, 0) + line.amount_cents
        charge_lines[line.charge_key] = charge_lines.get(line.charge_key, 0) + 1

    for key, total in charge_total.items():
        balance = charges[key].balance_cents
        if total > balance:
            in_total = " in total" if charge_lines[key] > 1 else ""
            problems.append(Problem("", f"charge {key} is paid in full: nothing of {format_cents(total)} can go to it"
                                    if balance == 0 else
                                    f"{format_cents(total)}{in_total} exceeds the {format_cents(balance)} balance of"
                                    f" charge {key}"))
    for key, total in payment_total.items():
        unapplied = payments[key].unapplied_cents
        if total > unapplied:
            in_total = " in total" if payment_lines[key] > 1 else ""
            problems.append(Problem("", f"payment {key} is fully allocated: it has nothing left to apply"
                                    if unapplied == 0 else
                                    f"{format_cents(total)}{in_total} exceeds the {format_cents(unapplied)} unapplied"
                                    f" on payment {key}"))
    return problems


def in_order(problems: Sequence[Problem]) -> list[Problem]:
    """The problems of the lines in the order of the lines (argument 1 before argument 2, line 3
    before line 5), then those of the set as a whole (the totals), as they came."""
    return sorted(problems, key=lambda p: (p.line == 0, p.line))


def _line_refusals(line: Line, payment: PaymentState | None, charge: ChargeState | None) -> list[tuple[str, str]]:
    """Why one line cannot be applied at all: (tag, reason) pairs, the tag naming the id at fault
    so that a reason shared by several lines is reported once."""
    refusals: list[tuple[str, str]] = []
    if payment is None:
        refusals.append((f"p:{line.payment_key}", unknown("payment", line.payment_key)))
    else:
        reason = _payment_refusal(payment)
        if reason:
            refusals.append((f"p:{payment.key}", reason))
    if charge is None:
        where = f" (payalloc client show {payment.client_key} lists the open charges)" if payment else ""
        refusals.append((f"c:{line.charge_key}", unknown("charge", line.charge_key) + where))
    elif charge.payer not in SELF_PAY_PAYERS:
        refusals.append(
            (f"c:{charge.key}", f"charge {charge.key} is billed to insurance and is never allocated client payments")
        )
    if payment is not None and charge is not None and payment.client_key != charge.client_key:
        refusals.append((
            f"x:{payment.key}:{charge.key}",
            f"charge {charge.key} belongs to client {charge.client_key}, "
            f"not to client {payment.client_key} of payment {payment.key}",
        ))
    return refusals


def _payment_refusal(payment: PaymentState) -> str | None:
    if payment.status == "void":
        return f"payment {payment.key} is void"
    if payment.status == "pending":
        return f"payment {payment.key} is pending; reconcile it first: payalloc payment ready {payment.key}"
    if payment.apply_to != "specific":
        how = "to the oldest charges by run-job" if payment.apply_to == "oldest" else "to its event by run-job"
        return (
            f"payment {payment.key} is applied {how}, not by hand; to allocate it yourself, "
            f"change its mode first: payalloc payment mode {payment.key} specific"
        )
    return None


def merge(lines: Sequence[Line]) -> list[ManualAllocation]:
    """Sum the amounts of each (payment, charge) pair: one remittance per pair, in first-seen order."""
    totals: dict[tuple[str, str], int] = {}
    wheres: dict[tuple[str, str], tuple[str, ...]] = {}
    for line in lines:
        pair = (line.payment_key, line.charge_key)
        totals[pair] = totals.get(pair, 0) + line.amount_cents
        wheres[pair] = (*wheres.get(pair, ()), line.where)
    return [ManualAllocation(p, c, cents, wheres[p, c]) for (p, c), cents in totals.items()]
