"""Money, dates and ids: the grammar at the edge of the ledger (spec "Money, dates, ids").

Money is parsed against a reference grammar written here, independently of money.py: anything
parse_cents accepts must match it and have the value it denotes; anything that matches it (and is
in range) must be accepted.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from payalloc.dates import DateError, parse_date
from payalloc.errors import InputError
from payalloc.ids import MAX_ID_LENGTH, parse_id, some
from payalloc.money import MAX_CENTS, MoneyError, format_cents, parse_cents, plain_cents

# The spec's money grammar: optional '$', ASCII digits either plain (no leading zero) or grouped by
# commas in threes, then at most two decimals. Spaces and tabs around it are tolerated.
_GROUPED = r"[1-9][0-9]?[0-9]?(?:,[0-9][0-9][0-9])+"
_PLAIN = r"0|[1-9][0-9]*"
REFERENCE = re.compile(rf"[ \t]*\$?(?P<whole>{_GROUPED}|{_PLAIN})(?:\.(?P<frac>[0-9][0-9]?))?[ \t]*", re.ASCII)


def reference_cents(text: str) -> int | None:
    """What the text is worth by the spec, or None if it is not an acceptable amount."""
    m = REFERENCE.fullmatch(text)
    if m is None:
        return None
    whole = int(m["whole"].replace(",", ""))
    frac = m["frac"] or ""
    cents = whole * 100 + int((frac + "00")[:2])
    return cents if 1 <= cents <= MAX_CENTS else None


def check_against_reference(text: str) -> None:
    expected = reference_cents(text)
    try:
        got = parse_cents(text)
    except MoneyError as error:
        assert expected is None, f"{text!r} refused ({error}) but the grammar gives {expected}"
        assert str(error), "a refusal must say why"
    else:
        assert got == expected, f"{text!r} parsed as {got}, the grammar gives {expected}"
        assert type(got) is int


@given(st.integers(min_value=1, max_value=MAX_CENTS))
@example(1)
@example(MAX_CENTS)
@example(123450)
def test_format_then_parse_round_trips(cents: int) -> None:
    assert parse_cents(plain_cents(cents)) == cents
    assert parse_cents(format_cents(cents)) == cents
    assert parse_cents("$" + format_cents(cents)) == cents
    assert re.fullmatch(r"[0-9]+\.[0-9]{2}", plain_cents(cents), re.ASCII)


@given(st.text())
def test_anything_accepted_matches_the_grammar(text: str) -> None:
    check_against_reference(text)


MONEYISH = st.text(
    alphabet=st.sampled_from([*"0123456789,.$ -e+E_\t", "\u00a0", "\u0661", "\u0662", "\uff11", "\u06f5", "\u066b"]),
    max_size=16,
)


@given(MONEYISH)
def test_money_looking_text_accepted_iff_grammar(text: str) -> None:
    check_against_reference(text)


@given(
    st.integers(min_value=1, max_value=MAX_CENTS),
    st.booleans(), st.booleans(), st.sampled_from(["", " ", "\t", "  "]),
)
def test_generated_valid_spellings_are_accepted(cents: int, grouped: bool, dollar: bool, pad: str) -> None:
    whole, frac = divmod(cents, 100)
    text = f"{whole:,}" if grouped else str(whole)
    if frac % 10 == 0 and frac:
        text += f".{frac // 10}"  # 1234.5
    elif frac:
        text += f".{frac:02d}"
    text = pad + ("$" if dollar else "") + text + pad
    assert parse_cents(text) == cents


@pytest.mark.parametrize(
    "text",
    [
        "10.005", "12.345", "1e3", "1E3", "1.2E+04", "NaN", "nan", "inf", "Infinity", "-inf",
        "12,50", "1.234,56", "1,23", "12,3456.00", ",123", "1,,000",
        "-5", "-0.01", "+5", "12.50-", "0", "0.00", "0.0", "$0", "-0", "00.50", "007.00",
        "(12.50)", "１２３", "١٢٣.٤٥", "۱۲۳", "1_000", "1_000.00",
        "", " ", "\t", "$", "$$1", ".", ".5", "5.", "12.5\u00a0", "\u00a012.5", "1\u00a0000.00",
        "12.50 USD", "USD 12.50", "€12,50", "12.50$", "$ 12.50", "1 000.00",
        "12.5\n", "0x10", "1000000000.01", "99999999999999999999",
    ],
)
def test_refused_amounts(text: str) -> None:
    with pytest.raises(MoneyError) as info:
        parse_cents(text)
    assert str(info.value)
    assert reference_cents(text) is None  # the reference grammar agrees: nothing here is money


@pytest.mark.parametrize(
    ("text", "cents"),
    [
        ("1234.5", 123450), ("1234.50", 123450), ("1,234.50", 123450), ("$1,234.50", 123450),
        ("$1234.50", 123450), ("0.01", 1), ("0.5", 50), ("$200", 20000), ("1,000,000,000.00", MAX_CENTS),
        (" 12.50 ", 1250), ("\t7\t", 700), ("999", 99900),
    ],
)
def test_accepted_amounts(text: str, cents: int) -> None:
    assert parse_cents(text) == cents


def test_error_messages_say_what_is_wrong() -> None:
    with pytest.raises(MoneyError, match="empty"):
        parse_cents("  ")
    with pytest.raises(MoneyError, match=r"greater than 0\.00"):
        parse_cents("0.00")
    with pytest.raises(MoneyError, match=r"1,234\.50"):
        parse_cents("12,50")
    with pytest.raises(MoneyError, match=r"larger than 1,000,000,000\.00"):
        parse_cents("1000000000.01")


@pytest.mark.parametrize(("text", "message"), [
    # A clerk who types a refund, a fraction of a cent or a European decimal comma is told which it is.
    ("-5", "'-5' is negative: an amount must be greater than 0.00"),
    ("-$1,234.50", "'-$1,234.50' is negative: an amount must be greater than 0.00"),
    ("$-5.00", "'$-5.00' is negative: an amount must be greater than 0.00"),
    ("60.001", "'60.001' has more than 2 decimals: an amount is in whole cents, like 1,234.50"),
    ("$1,234.505", "'$1,234.505' has more than 2 decimals: an amount is in whole cents, like 1,234.50"),
    ("12,50", "'12,50' is not an amount like 1,234.50: a comma only groups thousands, cents come after a point"),
    ("--5", "'--5' is not an amount like 1,234.50"),
    ("1e3", "'1e3' is not an amount like 1,234.50"),
])
def test_a_refused_amount_says_why_when_the_reason_is_plain(text: str, message: str) -> None:
    with pytest.raises(MoneyError) as info:
        parse_cents(text)
    assert str(info.value) == message


def test_format() -> None:
    assert format_cents(123450) == "1,234.50"
    assert plain_cents(123450) == "1234.50"
    assert format_cents(5) == "0.05" and plain_cents(5) == "0.05"
    assert format_cents(-123450) == "-1,234.50" and plain_cents(-1) == "-0.01"
    assert format_cents(0) == "0.00"


# --- dates ---------------------------------------------------------------------------------------


@given(st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31)))
def test_real_dates_round_trip(day: dt.date) -> None:
    assert parse_date(day.isoformat()) == day.isoformat()


@given(st.text(alphabet=st.sampled_from([*"0123456789-/ WT:Z", "\u0661", "\uff11"]), max_size=14) | st.text())
def test_accepted_dates_are_iso_calendar_days(text: str) -> None:
    try:
        value = parse_date(text)
    except DateError as error:
        assert "YYYY-MM-DD" in str(error)
    else:
        assert re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value, re.ASCII)
        assert value == text.strip(" \t")
        dt.date.fromisoformat(value)


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-30", "2025-02-29", "2026-13-01", "2026-00-10", "2026-01-00", "2026-01-32",
        "20260131", "2026-W05-6", "2026-W05", "2026/01/31", "26-01-31", "01/31/2026", "31.01.2026",
        "2026-1-31", "2026-01-31T00:00:00", "2026-01-31Z", "2026-01-31 10:00", "45678", "", " ",
        "２０２６-０１-３１", "٢٠٢٦-٠١-٣١", "2026-01-31\u00a0", "+2026-01-31", "2026-031",
    ],
)
def test_refused_dates_name_the_format(text: str) -> None:
    with pytest.raises(DateError, match="YYYY-MM-DD"):
        parse_date(text)


def test_accepted_dates() -> None:
    assert parse_date("2024-02-29") == "2024-02-29"
    assert parse_date(" 2026-01-31\t") == "2026-01-31"
    assert parse_date("2026-12-31") == "2026-12-31"


# --- ids -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"), ("   ", "empty"), ("\t\n", "empty"),
        ("x" * (MAX_ID_LENGTH + 1), "longer than 64"),
        ("C-1\x00", "control"), ("C\x1b[2J", "control"), ("C-\u202e1", "control"), ("C\u200b1", "control"),
        ("C\n1", "control"), ("C\x7f", "control"), ("C\x85D", "control"),
    ],
)
def test_refused_ids(text: str, reason: str) -> None:
    with pytest.raises(InputError, match=reason) as info:
        parse_id(text, "client_id")
    assert "client_id" in str(info.value)


def test_ids_are_trimmed_and_kept_otherwise() -> None:
    assert parse_id("  C-1001 \t") == "C-1001"
    assert parse_id("x" * MAX_ID_LENGTH) == "x" * MAX_ID_LENGTH
    assert parse_id(" " + "y" * MAX_ID_LENGTH + " ") == "y" * MAX_ID_LENGTH
    assert parse_id("José [1] #2") == "José [1] #2"


@given(st.text(max_size=80))
def test_accepted_ids_are_printable_trimmed_and_short(text: str) -> None:
    try:
        value = parse_id(text)
    except InputError:
        stripped = text.strip()
        assert not stripped or len(stripped) > MAX_ID_LENGTH or not stripped.isprintable()
    else:
        assert value == text.strip() and 1 <= len(value) <= MAX_ID_LENGTH and value.isprintable()


@pytest.mark.parametrize(("keys", "text"), [
    (["P-1"], "payment P-1"),
    (["P-1", "P-2"], "payments P-1 and P-2"),
    ([f"P-{n}" for n in range(1, 9)], "payments P-1, P-2, P-3, P-4, P-5 and 3 more"),
    (["Jane Doe"], "1 payment"),  # an id that reads as a name is counted, never shown
    (["P-1", "Jane Doe"], "payments P-1 and 1 more"),
])
def test_a_warning_names_the_first_ids_and_counts_the_rest(keys: list[str], text: str) -> None:
    assert some("payment", keys) == text
