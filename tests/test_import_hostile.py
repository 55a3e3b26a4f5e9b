"""Hostile input to `payalloc import` (reliability-anchors §4, T5): a generated corpus of malformed
files across the four kinds, and Hypothesis mutations of valid files.

Every refusal: exit 3, a message naming the line (and column when a cell is at fault), no traceback,
no patient name echoed, and the ledger byte-for-byte as before. No real PHI: synthetic values only.
"""

from __future__ import annotations

import csv
import io
import random
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from payalloc.csv_import import LAYOUTS
from payalloc.ledger.connection import init_ledger, open_ledger
from tests.conftest import SAMPLE, Cli
from tests.test_import import KIND_ORDER, imp, load_samples

SENTINEL = "ZZSENTINEL Person"  # a patient name: must never be echoed in an error

# A valid row per kind, referencing what the sample ledger holds; line 2 and line 3 of each file.
GOOD = {
    "clients": {"client_id": "NEW-{n}", "name": SENTINEL, "responsible_party": ""},
    "events": {"event_id": "EV-{n}", "client_id": "C-1001", "scheduled_date": "2026-03-01", "status": "scheduled"},
    "charges": {"charge_id": "NC-{n}", "client_id": "C-1001", "service_date": "2026-03-01", "amount": "100.00",
                "payer": "self_pay", "service_code": "90834", "description": "Session", "event_id": ""},
    "payments": {"payment_id": "NP-{n}", "client_id": "C-1001", "received_date": "2026-03-01", "amount": "100.00",
                 "apply_to": "oldest", "event_id": "", "method": "card", "reference": "AUTH 1", "status": "ready",
                 "note": "note", "payer_name": SENTINEL},
}
KEY = {"clients": "client_id", "events": "event_id", "charges": "charge_id", "payments": "payment_id"}
DATE = {"events": "scheduled_date", "charges": "service_date", "payments": "received_date"}


def csv_bytes(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def header(kind: str) -> list[str]:
    return list(LAYOUTS[kind].columns)


def row(kind: str, n: int, **changes: str) -> list[str]:
    values = {k: v.format(n=n) for k, v in GOOD[kind].items()} | changes
    return [values[c] for c in header(kind)]


def bad_third_line(kind: str, **changes: str) -> bytes:
    """Header, a good row (line 2), and a row with these cells changed (line 3), then a good row."""
    return csv_bytes([header(kind), row(kind, 1), row(kind, 2, **changes), row(kind, 4)])


@dataclass(frozen=True)
class Case:
    id: str
    kind: str
    data: bytes | None  # None: FILE is a directory
    expect: tuple[str, ...]  # substrings of stderr ("{file}" is replaced by the path)


def _corpus() -> list[Case]:
    cases: list[Case] = []

    def add(id_: str, kind: str, data: bytes | None, *expect: str) -> None:
        cases.append(Case(f"{kind}-{id_}", kind, data, expect))

    money_refusals = ["10.005", "1e3", "NaN", "inf", "12,50", "1.234,56", "-5", "0", "0.00", "(12.50)", "１２３",
                      "١٢٣.٤٥", "1_000", "$", "12.5\u00a0", "\u00a012.50", "12.50 USD", "NULL", "N/A", "-"]
    date_refusals = ["2026-02-30", "20260131", "2026-W05-6", "2026/01/31", "26-01-31", "03/04/2026", "45678",
                     "2026-01-31T10:00:00Z", "N/A"]
    for kind in KIND_ORDER:
        cols = header(kind)
        key = KEY[kind]
        add("empty", kind, b"", "{file} is empty", "expected a header row")
        add("blank-lines", kind, b"\n\n\n", "{file}: line 1: missing required column")
        add("bom-only", kind, b"\xef\xbb\xbf", "{file} is empty")
        for col in LAYOUTS[kind].required:
            add(f"missing-{col}", kind, csv_bytes([[c for c in cols if c != col], row(kind, 1)[:-1]]),
                f"{{file}}: line 1: missing required column {col}", f"a {kind} file has columns {', '.join(cols)}")
        add("duplicate-column", kind, csv_bytes([[*cols, cols[1]], [*row(kind, 1), "x"]]),
            f"{{file}}: line 1: column {cols[1]} appears twice in the header")
        other = KIND_ORDER[(KIND_ORDER.index(kind) + 2) % 4]
        add(f"{other}-file", kind, (SAMPLE / f"{other}.csv").read_bytes(), "{file}: line 1: missing required column",
            f"a {kind} file has columns")
        text = bad_third_line(kind).decode()
        add("utf16-le", kind, text.encode("utf-16"), "{file} is UTF-16 text")
        add("utf16-be", kind, b"\xfe\xff" + text.encode("utf-16-be"), "{file} is UTF-16 text")
        add("utf32-le", kind, text.encode("utf-32"), "{file} is UTF-32 text")
        add("utf32-be", kind, b"\x00\x00\xfe\xff" + text.encode("utf-32-be"), "{file} is UTF-32 text")
        add("utf16-no-bom", kind, text.encode("utf-16-le"), "{file}: line 1 contains NUL bytes")
        first_text = cols[1] if kind == "clients" else ("description" if kind == "charges" else None)
        if first_text:
            add("cp1252", kind, bad_third_line(kind, **{first_text: "Caf\u00e9"}).decode().encode("cp1252"),
                "{file}: line 3 is not UTF-8 text")
        add("cp1252-id", kind, bad_third_line(kind, **{key: "K\u00e9"}).decode().encode("cp1252"),
            "{file}: line 3 is not UTF-8 text")
        add("latin1-late", kind, csv_bytes([cols] + [row(kind, n) for n in range(1, 900)])
            + ",".join(row(kind, 900)).replace(f"-{900}", "-\u00e9").encode("latin-1") + b"\n",
            "{file}: line 901 is not UTF-8 text")
        add("truncated-utf8", kind, csv_bytes([cols, row(kind, 1)]) + "K\u00e9".encode()[:-1],
            "{file}: line 3 is not UTF-8 text")
        add("nul", kind, bad_third_line(kind).replace(b"-2,", b"-2\x00,", 1), "{file}: line 3 contains NUL bytes")
        add("unterminated-quote", kind, csv_bytes([cols, row(kind, 1)]) + b'"NEW,unclosed\n' + csv_bytes([row(kind, 3)]),
            "{file}: line 3: a quoted field that starts here is never closed")
        add("stray-quote", kind, csv_bytes([cols, row(kind, 1)]) + b'"X-2"junk,' + b",".join([b"a"] * (len(cols) - 1))
            + b"\n", "{file}: line 3: malformed CSV")
        add("semicolons", kind, bad_third_line(kind).replace(b",", b";"), "{file}: line 1: missing required column")
        add("excel-sep-line", kind, b"sep=,\n" + bad_third_line(kind), "{file}: line 1: missing required column")
        good = row(kind, 2)
        add("too-many-cells", kind, csv_bytes([cols, row(kind, 1), [*good, "extra"]]),
            f"{{file}}: line 3: has {len(cols) + 1} fields but the header has {len(cols)}")
        add("too-few-cells", kind, csv_bytes([cols, row(kind, 1), good[:-1]]),
            f"{{file}}: line 3: has {len(cols) - 1} fields but the header has {len(cols)}")
        add("whitespace-row", kind, csv_bytes([cols, row(kind, 1), ["   "]]),
            f"{{file}}: line 3: has 1 fields but the header has {len(cols)}")
        add("key-empty", kind, bad_third_line(kind, **{key: "  "}), f"{{file}}: line 3, column {key}: is required")
        add("key-too-long", kind, bad_third_line(kind, **{key: "K" * 65}),
            f"{{file}}: line 3, column {key}: is longer than 64 characters")
        for name, bad in (("esc", "K\x1b[2J"), ("bidi", "K\u202e1"), ("bell", "K\x07"), ("zwsp", "K\u200b1")):
            add(f"key-{name}", kind, bad_third_line(kind, **{key: bad}),
                f"{{file}}: line 3, column {key}: contains control or invisible characters")
        if kind != "clients":
            add("client-too-long", kind, bad_third_line(kind, client_id="C" * 65),
                "{file}: line 3, column client_id: is longer than 64 characters")
            add("client-unknown", kind, bad_third_line(kind, client_id="C-0000"),
                "{file}: line 3, column client_id: client_id C-0000 is not in the ledger")
            date = DATE[kind]
            for bad in date_refusals:
                add(f"date-{bad}", kind, bad_third_line(kind, **{date: bad}),
                    f"{{file}}: line 3, column {date}: '{bad}' is not a", "YYYY-MM-DD")
            add("date-empty", kind, bad_third_line(kind, **{date: ""}), f"{{file}}: line 3, column {date}: is required")
        if kind in ("charges", "payments"):
            for bad in money_refusals:
                add(f"amount-{bad}", kind, bad_third_line(kind, amount=bad), "{file}: line 3, column amount: ")
            add("amount-empty", kind, bad_third_line(kind, amount=" "), "{file}: line 3, column amount: is required")
            add("amount-huge", kind, bad_third_line(kind, amount="1000000000.01"),
                "{file}: line 3, column amount: amount 1,000,000,000.01 is larger than")
            add("event-unknown", kind, bad_third_line(kind, event_id="EV-404", **(
                {"apply_to": "event"} if kind == "payments" else {})),
                "{file}: line 3, column event_id: event_id EV-404 is not in the ledger")
            add("event-of-other-client", kind, bad_third_line(kind, event_id="E-501", **(
                {"apply_to": "event"} if kind == "payments" else {})),
                "{file}: line 3, column event_id: event_id E-501 belongs to another client")
        if kind == "events":
            add("status-bad", kind, bad_third_line(kind, status="cancelled"),
                "{file}: line 3, column status: 'cancelled' is not one of done, scheduled")
            add("conflict-date", kind, csv_bytes([cols, row(kind, 1), ["E-501", "C-1004", "2026-10-07", "done"]]),
                "{file}: line 3, column scheduled_date: event_id E-501 is already in the ledger")
        if kind == "clients":
            add("name-empty", kind, bad_third_line(kind, name=""), "{file}: line 3, column name: is required")
            add("name-too-long", kind, bad_third_line(kind, name="N" * 201),
                "{file}: line 3, column name: is longer than 200 characters")
            add("responsible-too-long", kind, bad_third_line(kind, responsible_party="R" * 201),
                "{file}: line 3, column responsible_party: is longer than 200 characters")
        if kind == "charges":
            for bad in ("selfpay", "SELF-PAY", "-", "Medicare"):
                add(f"payer-{bad}", kind, bad_third_line(kind, payer=bad),
                    f"{{file}}: line 3, column payer: '{bad}' is not one of insurance, patient_resp, self_pay")
            add("description-too-long", kind, bad_third_line(kind, description="D" * 4001),
                "{file}: line 3, column description: is longer than 4000 characters")
            add("code-too-long", kind, bad_third_line(kind, service_code="9" * 65),
                "{file}: line 3, column service_code: is longer than 64 characters")
            add("conflict-amount", kind, csv_bytes([
                cols, row(kind, 1), ["CH-2001", "C-1001", "2026-08-04", "150.01", "self_pay", "90834",
                                     "Individual psychotherapy, 45 min", ""]]),
                "{file}: line 3, column amount: charge_id CH-2001 is already in the ledger with a different amount")
            add("duplicate-id", kind, csv_bytes([cols, row(kind, 1), row(kind, 1)]),
                "{file}: line 3, column charge_id: charge_id NC-1 appears twice in this file (first on line 2)")
        if kind == "payments":
            add("apply-to-bad", kind, bad_third_line(kind, apply_to="newest"),
                "{file}: line 3, column apply_to: 'newest' is not one of event, oldest, specific")
            add("method-bad", kind, bad_third_line(kind, method="bitcoin"), "{file}: line 3, column method: 'bitcoin'")
            add("status-void", kind, bad_third_line(kind, status="void"),
                "{file}: line 3, column status: 'void' is not one of pending, ready")
            add("oldest-with-event", kind, bad_third_line(kind, event_id="E-502"),
                "{file}: line 3, column event_id: must be empty when apply_to is oldest")
            add("specific-with-event", kind, bad_third_line(kind, apply_to="specific", event_id="E-502"),
                "{file}: line 3, column event_id: must be empty when apply_to is specific")
            add("event-without-event-id", kind, bad_third_line(kind, apply_to="event"),
                "{file}: line 3, column event_id: is required when apply_to is event")
            for col, limit in (("note", 4000), ("reference", 200), ("payer_name", 200)):
                add(f"{col}-too-long", kind, bad_third_line(kind, **{col: "x" * (limit + 1)}),
                    f"{{file}}: line 3, column {col}: is longer than {limit} characters")
            add("conflict-amount", kind, csv_bytes([
                cols, ["P-3001", "C-1001", "2026-08-20", "300.10", "oldest", "", "card", "AUTH 559812", "ready", "", ""]]),
                "{file}: line 2, column amount: payment_id P-3001 is already in the ledger with a different amount")
        garbage = random.Random(kind).randbytes(3000)
        add("binary-garbage", kind, garbage, "{file}")
        add("high-bytes", kind, bytes(range(128, 256)) * 4, "{file}: line 1 is not UTF-8 text")
        add("directory", kind, None, "{file} is a directory")
    return cases


CORPUS = _corpus()


@pytest.fixture(scope="module")
def base_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("base") / "ledger.db"
    init_ledger(path)
    conn = open_ledger(path)
    load_samples(conn)
    conn.close()
    return path


def copy_ledger(base: Path, where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    target = where / "ledger.db"
    shutil.copyfile(base, target)
    return target


def dump_of(path: Path) -> list[str]:
    c = sqlite3.connect(path)
    try:
        return list(c.iterdump())
    finally:
        c.close()


def test_corpus_is_large_and_covers_every_kind() -> None:
    assert len(CORPUS) >= 100
    assert {c.kind for c in CORPUS} == set(KIND_ORDER)
    assert len({c.id for c in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=[c.id for c in CORPUS])
def test_malformed_input_is_refused_whole(case: Case, base_ledger: Path, tmp_path: Path) -> None:
    ledger = copy_ledger(base_ledger, tmp_path / "db")
    file = tmp_path / "input.csv"
    if case.data is None:
        file.mkdir()
    else:
        file.write_bytes(case.data)
    before = dump_of(ledger)
    result = Cli(ledger)("import", case.kind, str(file))
    out = result.stdout + result.stderr
    assert result.exit_code == 3, out
    assert "Traceback" not in out
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    for expect in case.expect:
        assert expect.replace("{file}", str(file)) in result.stderr, result.stderr
    assert SENTINEL not in out
    assert "\x1b" not in out and "\u202e" not in out  # a bad id is not echoed raw to the terminal
    assert dump_of(ledger) == before


def test_dry_run_refuses_the_same(base_ledger: Path, tmp_path: Path) -> None:
    ledger = copy_ledger(base_ledger, tmp_path / "db")
    file = tmp_path / "in.csv"
    file.write_bytes(bad_third_line("charges", amount="1e3"))
    result = Cli(ledger)("import", "charges", str(file), "--dry-run")
    assert result.exit_code == 3 and f"{file}: line 3, column amount: '1e3'" in result.stderr


@pytest.mark.parametrize("kind", KIND_ORDER)
def test_header_only_is_accepted_with_a_warning(kind: str, base_ledger: Path, tmp_path: Path) -> None:
    ledger = copy_ledger(base_ledger, tmp_path / "db")
    file = tmp_path / "in.csv"
    file.write_bytes(csv_bytes([header(kind)]))
    before = dump_of(ledger)
    result = Cli(ledger)("import", kind, str(file))
    assert result.exit_code == 0
    assert result.stdout == f"{file}: imported 0 new, 0 updated, 0 unchanged {kind}\n"
    assert result.stderr == f"warning: {file}: the file has a header but no rows\n"
    after = dump_of(ledger)
    assert [line for line in after if line not in before] == [
        line for line in after if line.startswith('INSERT INTO "audit"') and line not in before]


def test_stdin_garbage_is_refused(base_ledger: Path, tmp_path: Path) -> None:
    ledger = copy_ledger(base_ledger, tmp_path / "db")
    before = dump_of(ledger)
    result = Cli(ledger)("import", "payments", "-", input=b"\xff\xfe" + "payment_id".encode("utf-16-le"))
    assert result.exit_code == 3 and "stdin is UTF-16 text" in result.stderr
    assert dump_of(ledger) == before


# --- generated mutations of valid files ------------------------------------------------------------

MUTATION_KINDS = ("clients", "events", "charges", "payments")
INSERTS = [b'"', b",", b"\n", b"\r", b"\r\n", b";", b"\x00", b"\xff", b"\xc3", b" ", b"\t", b"$", b"-", b"\xef\xbb\xbf"]


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(MUTATION_KINDS))
    data = (SAMPLE / f"{kind}.csv").read_bytes()
    if kind in ("charges", "payments"):  # keep it small: the header and a few rows
        data = b"\n".join(data.split(b"\n")[: draw(st.integers(1, 12))]) + b"\n"
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["flip", "insert", "truncate", "drop-col", "dup-col", "drop-line", "dup-line",
                                   "delimiter", "utf16", "cp1252"]))
        lines = data.split(b"\n")
        if op == "flip" and data:
            i = draw(st.integers(0, len(data) - 1))
            data = data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1:]
        elif op == "insert":
            i = draw(st.integers(0, len(data)))
            data = data[:i] + draw(st.sampled_from(INSERTS)) + data[i:]
        elif op == "truncate":
            data = data[: draw(st.integers(0, len(data)))]
        elif op in ("drop-col", "dup-col"):
            j = draw(st.integers(0, 10))
            out = []
            for line in lines:
                cells = line.split(b",")
                if j < len(cells):
                    cells = cells[:j] + cells[j + 1:] if op == "drop-col" else cells[: j + 1] + cells[j:]
                out.append(b",".join(cells))
            data = b"\n".join(out)
        elif op in ("drop-line", "dup-line") and len(lines) > 1:
            j = draw(st.integers(0, len(lines) - 1))
            lines[j:j + 1] = [] if op == "drop-line" else [lines[j], lines[j]]
            data = b"\n".join(lines)
        elif op == "delimiter":
            data = data.replace(b",", b";")
        elif op == "utf16":
            data = data.decode("utf-8", "replace").encode(draw(st.sampled_from(["utf-16", "utf-16-le", "utf-16-be"])))
        elif op == "cp1252":
            data = data.decode("utf-8", "replace").replace("e", "\u00e9").encode("cp1252", "replace")
    return kind, data


@pytest.fixture(scope="module")
def mutation_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mbase") / "ledger.db"
    init_ledger(path)
    conn = open_ledger(path)
    load_samples(conn, ("clients", "events"))
    conn.close()
    return path


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], deadline=None)
@given(mutated())
def test_mutated_files_are_imported_whole_or_refused_cleanly(
    mutation_base: Path, tmp_path_factory: pytest.TempPathFactory, case: tuple[str, bytes],
) -> None:
    kind, data = case
    where = tmp_path_factory.mktemp("m")
    ledger = copy_ledger(mutation_base, where)
    file = where / "in.csv"
    file.write_bytes(data)
    before = dump_of(ledger)
    cli = Cli(ledger)
    result = cli("import", kind, str(file))
    out = result.stdout + result.stderr
    assert "Traceback" not in out
    assert result.exit_code in (0, 3), out
    event(f"exit {result.exit_code}")
    if result.exit_code == 0:
        check = cli("check")
        assert check.exit_code == 0, check.stdout + check.stderr
    else:
        assert result.stderr.startswith("error: ") and str(file) in result.stderr
        assert dump_of(ledger) == before
    shutil.rmtree(where)


def test_service_refuses_every_corpus_file_without_writing(base_ledger: Path, tmp_path: Path,
                                                           dump: Callable[[], list[str]]) -> None:
    """The service layer alone (no CLI boundary): every refusal is an InputError, never anything else."""
    from payalloc.errors import InputError

    ledger = copy_ledger(base_ledger, tmp_path / "svc")
    conn = open_ledger(ledger)
    before = dump_of(ledger)
    for case in CORPUS:
        if case.data is None:
            continue
        with pytest.raises(InputError):
            imp(conn, case.kind, case.data, name="x.csv")
        assert not conn.in_transaction
    conn.close()
    assert dump_of(ledger) == before
