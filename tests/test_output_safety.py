"""Output safety (reliability-anchors T6): user text reaches a terminal literally (no Rich markup, no
ANSI, no bidi tricks) and reaches a spreadsheet as text (formula cells neutralized, amounts numeric),
and CSV exports round-trip through csv.reader to that text, controls but tab and line breaks shown as U+FFFD."""

from __future__ import annotations

import csv
import io
import os
import re
import sqlite3
import sys
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payalloc.cli import output
from payalloc.cli.output import Column, emit_csv, neutralize, safe
from tests.conftest import Cli, fits, whole
from tests.test_import import imp

FORMULA = ("=", "+", "-", "@", "|", "\t", "\r", "\x00")
# What must never reach a terminal from data: C0 (but tab/newline), DEL, C1, bidi, zero-width, BOM,
# and surrogates (bytes that were not UTF-8: written raw, 0x9b is a CSI to an 8-bit terminal).
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff]")

MARKUP_NAMES = ["[/]", "[link=https://x]hi[/link]", "[bold red]PAID[/]", "[/bold]x", "\\[escaped]", "[[", "]]"]
HOSTILE_NAMES = ["A\x1b[2JB", "Eve\u202eliam", "Zed\x9b31mX", "Bell\x07Y", "Zero\u200bWidth", "O\x1b]8;;https://x\x1b\\link"]


def csv_text(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


@contextmanager
def captured_stdout() -> Iterator[io.StringIO]:
    old, sys.stdout = sys.stdout, io.StringIO()
    try:
        yield sys.stdout
    finally:
        sys.stdout = old


def hostile_ledger(conn: sqlite3.Connection) -> list[str]:
    names = MARKUP_NAMES + HOSTILE_NAMES
    rows = [["client_id", "name", "responsible_party"]]
    rows += [[f"C{i:02d}", name, "[i]resp[/i]" if i == 0 else ""] for i, name in enumerate(names)]
    imp(conn, "clients", csv_text(rows))
    pays = [["payment_id", "client_id", "received_date", "amount", "apply_to", "reference", "note", "payer_name"]]
    refs = ["[/]", "[link=https://x]hi[/link]", "R\x1b[31mRED", "Ref\u202eabc", "[bold red]PAID[/]"]
    for i, ref in enumerate(refs):
        pays.append([f"P{i}", "C00", f"2026-01-0{i + 1}", "1,234.50", "oldest", ref, f"note {i}", ""])
    imp(conn, "payments", csv_text(pays))
    return names


# --- terminal -------------------------------------------------------------------------------------


def test_client_list_prints_markup_literally_and_no_controls(cli: Cli, conn: sqlite3.Connection) -> None:
    hostile_ledger(conn)
    result = cli("client", "list")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    for name in MARKUP_NAMES:
        assert name in out, name
    assert "[i]resp[/i]" in out
    assert not UNSAFE.search(out), repr(UNSAFE.search(out))
    assert "\x1b" not in out + result.stderr and "\u202e" not in out
    # controls are replaced, the rest of the name is kept
    assert "A\ufffd[2JB" in out and "Eve\ufffdliam" in out and "Zero\ufffdWidth" in out


def test_payment_list_prints_references_literally(cli: Cli, conn: sqlite3.Connection) -> None:
    hostile_ledger(conn)
    result = cli("payment", "list")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "[/]" in out and "[link=https://x]hi[/link]" in out and "[bold red]PAID[/]" in out
    assert "R\ufffd[31mRED" in out and "Ref\ufffdabc" in out
    assert not UNSAFE.search(out)
    assert "1,234.50" in out


def test_client_show_and_unallocated_survive_markup(cli: Cli, conn: sqlite3.Connection) -> None:
    hostile_ledger(conn)
    for args in (("client", "show", "C00"), ("unallocated",), ("remittances", "list")):
        result = cli(*args)
        assert result.exit_code == 0, (args, result.stderr)
        assert "Traceback" not in result.stdout + result.stderr
        assert not UNSAFE.search(result.stdout + result.stderr), args


@pytest.mark.parametrize("args", [
    ("--x\u202eevil",),                              # an unknown global option
    ("client", "list", "extra\u202eevil"),           # an unexpected argument
    ("remittances", "list", "--x\u200bzero"),        # an unknown option of a command
    ("nosuch\u2066command",),                        # an unknown command
])
def test_usage_errors_quote_the_command_line_without_bidi_characters(cli: Cli, args: tuple[str, ...]) -> None:
    result = cli(*args)
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.endswith(" --help)\n")
    assert result.stderr.count("\n") == 1  # one sentence, as every other error: no usage block
    assert not UNSAFE.search(result.stdout + result.stderr), repr(result.stderr)


def test_a_file_name_with_a_line_break_cannot_forge_a_line_of_output(cli: Cli, tmp_path: Path) -> None:
    forged = tmp_path / "clients\nerror: the ledger was deleted.csv"
    forged.write_text("client_id,name\nC1,Ann\n")
    for args in (("import", "clients", str(forged)), ("import", "clients", str(forged) + "\nwarning: x")):
        result = cli(*args)
        lines = (result.stdout + result.stderr).splitlines()
        assert len(lines) == 1 and "clients\ufffderror: the ledger was deleted.csv" in lines[0], lines


def test_joiners_that_names_need_print_as_they_are(cli: Cli, conn: sqlite3.Connection) -> None:
    persian = "\u0645\u06cc\u200c\u0631\u0648\u062f"  # ZWNJ inside a Persian word
    health_worker = "\U0001f469\u200d\u2695\ufe0f"  # woman + ZWJ + staff of Aesculapius
    imp(conn, "clients", f"client_id,name\nC1,{persian} {health_worker}\n")
    result = cli("client", "list")
    assert result.exit_code == 0, result.stderr
    assert persian in result.stdout and health_worker in result.stdout and "\ufffd" not in result.stdout


def test_emoji_codes_in_user_text_print_literally(cli: Cli, conn: sqlite3.Connection) -> None:
    imp(conn, "clients", "client_id,name,responsible_party\nC1,:skull: Ann,:warning:\n")
    imp(conn, "payments", "payment_id,client_id,received_date,amount,apply_to,reference,note\n"
                          "P1,C1,2026-01-02,5.00,specific,:red_circle:,:thumbs_up: paid\n")
    for args, texts in ((("payment", "show", "P1"), (":red_circle:", ":thumbs_up: paid")),
                        (("client", "show", "C1"), (":skull: Ann", ":warning:", ":red_circle:"))):
        result = cli(*args)
        assert result.exit_code == 0, result.stderr
        for text in texts:
            assert text in result.stdout, (args, text, result.stdout)


def test_json_keeps_text_exact(cli: Cli, conn: sqlite3.Connection) -> None:
    """Machine formats are not a terminal: the stored text comes back exactly (JSON-escaped)."""
    import json

    names = hostile_ledger(conn)
    data = json.loads(cli("client", "list", "--json").stdout)
    assert sorted(r["name"] for r in data) == sorted(names)


def test_json_escapes_what_a_terminal_would_act_on_and_reads_back_exact(cli: Cli, conn: sqlite3.Connection,
                                                                          tmp_path: Path) -> None:
    """C1 controls, bidi and zero-width characters leave as \\uXXXX escapes (json writes them raw), and
    a file name that is not UTF-8 (kept by the audit trail) does not make the output invalid UTF-8."""
    import json

    names = hostile_ledger(conn)
    result = cli("client", "list", "--json")
    assert not UNSAFE.search(result.stdout), repr(UNSAFE.search(result.stdout))
    assert sorted(r["name"] for r in json.loads(result.stdout)) == sorted(names)
    clients = tmp_path / os.fsdecode(b"clients-\xff\xe2\x80\xae.csv")
    clients.write_text("client_id,name\nC99,Someone\n")
    assert cli("import", "clients", str(clients)).exit_code == 0
    result = cli("audit", "--json")
    result.stdout.encode("utf-8")  # strict: no lone surrogate left in the text
    assert not UNSAFE.search(result.stdout), repr(UNSAFE.search(result.stdout))
    assert json.loads(result.stdout)[-1]["detail"]["file"] == str(clients)


def test_safe_replaces_controls_bidi_and_zero_width_space_but_keeps_the_joiners() -> None:
    # Named code points: UNSAFE above copies the pattern, so it alone could not catch a change to it.
    for char in ("\x1b", "\x9b", "\u200b", "\u200e", "\u200f", "\u202e", "\u2066", "\ufeff"):
        assert safe(f"a{char}b") == "a\ufffdb", repr(char)
    for char in ("\u200c", "\u200d", "\u00e9", "\u0645"):
        assert safe(f"a{char}b") == f"a{char}b", repr(char)


def test_safe_replaces_bytes_that_were_not_utf8() -> None:
    assert safe(os.fsdecode(b"file-\x9b31m-\xff.csv")) == "file-\ufffd31m-\ufffd.csv"


@given(st.text(st.characters(exclude_categories=())))
def test_safe_leaves_no_control_or_bidi(text: str) -> None:
    cleaned = safe(text)
    assert not UNSAFE.search(cleaned)
    assert len(cleaned) == len(text)  # replaced one for one, nothing silently dropped
    assert all(a == b or b == "\ufffd" for a, b in zip(text, cleaned, strict=True))


@given(st.text(), st.lists(st.sampled_from(["[", "]", "/", "\\", "=", "b", "link", "\x1b", "bold"]), max_size=12).map("".join))
def test_tables_render_any_text_without_markup_errors(text: str, brackets: str) -> None:
    with captured_stdout() as out:
        output.table([Column("a", "a"), Column("b", "b"), Column("amount", "amount", numeric=True)],
                     [{"a": text, "b": brackets, "amount": "1,234.50"}], title=brackets)
    rendered = out.getvalue()
    assert "\x1b" not in rendered and not UNSAFE.search(rendered)
    assert "1,234.50" in rendered


# --- narrow terminals: ids, dates and amounts are never cut or wrapped -----------------------------

NARROW_COLUMNS = [Column("Payment", "payment_id"), Column("Client", "client_id"), Column("Received", "received"),
                  Column("Amount", "amount", numeric=True), Column("Payment unapplied", "unapplied", numeric=True),
                  Column("Apply to", "apply_to"), Column("Status", "status"),
                  Column("Name", "name", text=True), Column("Note", "note", text=True)]
NARROW_ROWS = [
    {"payment_id": "P-20261120-3f9a1c", "client_id": "C-100234", "received": "2026-11-20", "amount": "1,234,567.89",
     "unapplied": "0.00", "apply_to": "specific", "status": "pending", "name": "Rowan Mbeki-Alvarez",
     "note": "Apply to the evaluation only, per client; call the responsible party before the 30th"},
    {"payment_id": "P-3005", "client_id": "C-1", "received": "2026-01-02", "amount": "60.00",
     "unapplied": "60.00", "apply_to": "oldest", "status": "ready", "name": "Ann", "note": ""},
]
FIXED_KEYS = [c.key for c in NARROW_COLUMNS if not c.text]


def rendered_at(width: int, monkeypatch: pytest.MonkeyPatch, columns: list[Column], rows: list[dict[str, str]],
                **kwargs: object) -> str:
    monkeypatch.setenv("COLUMNS", str(width))
    with captured_stdout() as out:
        output.table(columns, rows, **kwargs)  # type: ignore[arg-type]
    return out.getvalue()


@pytest.mark.parametrize("width", [40, 50, 60, 72, 80, 100, 120, 160, 200])
def test_tables_keep_ids_dates_and_amounts_whole_at_any_width(width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    out = rendered_at(width, monkeypatch, NARROW_COLUMNS, NARROW_ROWS, title="2 payments",
                      footer={"payment_id": "Total", "amount": "1,234,627.89"})
    assert fits(out, width), out
    for row in [*NARROW_ROWS, {"payment_id": "Total", "amount": "1,234,627.89"}]:
        for key in FIXED_KEYS:
            if row.get(key):
                assert whole(row[key], out), (width, key, out)
    for row in NARROW_ROWS:  # free text wraps, but no word of it is lost or cut
        for word in (row["name"] + " " + row["note"]).split():
            assert word in out, (width, word, out)


def test_a_table_that_fits_stays_a_table_and_a_narrow_terminal_gets_one_block_per_row(
        monkeypatch: pytest.MonkeyPatch) -> None:
    wide = rendered_at(200, monkeypatch, NARROW_COLUMNS, NARROW_ROWS)
    assert "┃ Payment " in wide and "-[ 1 ]" not in wide
    # 80 columns: the note wraps within the table; the ids and amounts stay on one line each
    medium = rendered_at(80, monkeypatch, [NARROW_COLUMNS[i] for i in (0, 1, 2, 3, 6, 8)], NARROW_ROWS)
    assert "┃ Client " in medium and "-[ 1 ]" not in medium
    assert re.search(r"P-20261120-3f9a1c .* 1,234,567\.89 .* Apply", medium)
    assert len(medium.splitlines()) > 8  # the note took several lines
    narrow = rendered_at(50, monkeypatch, NARROW_COLUMNS, NARROW_ROWS)
    assert "-[ 1 ]" in narrow and "-[ 2 ]" in narrow
    assert re.search(r"^Amount +1,234,567\.89 *$", narrow, re.MULTILINE)
    second = narrow[narrow.index("-[ 2 ]"):]
    assert "Name" in second and "Note" not in second  # P-3005 has no note: no line saying nothing



def test_a_table_too_wide_for_boxes_is_drawn_compact_before_it_becomes_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ten short columns (a remittance list) need 3 cells each boxed: on 80 columns they are drawn with
    one space between columns and a rule under the header, still a table, every value whole."""
    columns = [Column(f"col{i}", f"k{i}") for i in range(10)]
    rows = [{f"k{i}": f"V{i}-{n}xx" for i in range(10)} for n in range(3)]  # 7 cells a column: 70 + 9 spaces
    boxed = rendered_at(120, monkeypatch, columns, rows)
    assert "┃ col0 " in boxed
    compact = rendered_at(80, monkeypatch, columns, rows)
    assert "┃" not in compact and "-[ 1 ]" not in compact and fits(compact, 80), compact
    assert re.search(r"^V0-0xx +V1-0xx .* V9-0xx *$", compact, re.MULTILINE), compact
    assert "-[ 1 ]" in rendered_at(60, monkeypatch, columns, rows)  # narrower still: one block per row


@pytest.mark.parametrize("width", [4, 8, 12, 16, 19, 24])
def test_a_terminal_narrower_than_the_headers_still_shows_every_value(width: int,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks put each header above its value when the two do not fit side by side (the values
    were dropped); a value wider than the terminal itself folds, but nothing is lost."""
    columns = [Column("id", "id"), Column("payment", "p"), Column("Payment unapplied", "u", numeric=True),
               Column("created (UTC)", "c")]
    row = {"id": "26", "p": "P-3004", "u": "1,234.50", "c": "2026-12-01T22:30:11Z"}
    out = rendered_at(width, monkeypatch, columns, [row])
    assert fits(out, width), out
    joined = "".join(line.strip() for line in out.splitlines())
    for value in row.values():
        assert value in joined, (width, value, out)
        if len(value) <= width:
            assert whole(value, out), (width, value, out)

# --- spreadsheets ---------------------------------------------------------------------------------


def dangerous(text: str) -> bool:
    """Some line of the cell starts, after any white space or control characters, with a formula character."""
    def blank(ch: str) -> bool:
        return ch.isspace() or unicodedata.category(ch) == "Cc"

    for part in [text, *text.splitlines()]:
        if part.startswith(FORMULA):
            return True
        rest = part
        while rest and blank(rest[0]):
            rest = rest[1:]
        if rest.startswith(FORMULA):
            return True
    return False


@given(st.text())
def test_neutralize_any_text(text: str) -> None:
    result = neutralize(text)
    if result == text:
        assert not dangerous(text), f"{text!r} left as a formula"
    else:
        assert result == "'" + text  # only ever a quote in front, the text itself kept
        assert dangerous(text), f"{text!r} changed though harmless"


@given(st.text(alphabet=st.sampled_from([" ", "\u00a0", "\n", "\r", "\t", "=", "+", "-", "@", "a", "1", "'"]),
               max_size=12))
def test_neutralize_formula_alphabet(text: str) -> None:
    test_neutralize_any_text.hypothesis.inner_test(text)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "payload",
    [
        "=HYPERLINK(\"http://x\",\"y\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A2)", "\t=1", "\r=1",
        "   =1+1", "\u00a0=1", " \t@x", "note\n=1+1", "note\r\n  -2", "ok\n\n+1", "=", "-", "@",
    ],
)
def test_known_payloads_are_neutralized(payload: str) -> None:
    assert neutralize(payload) == "'" + payload


@pytest.mark.parametrize("harmless", ["Smith", "O'Brien", "a-b", "1+1", "x=y", "", " ", "note\nline two", "'=already"])
def test_harmless_text_is_untouched(harmless: str) -> None:
    assert neutralize(harmless) == harmless


def emitted(fields: list[str], rows: list[dict[str, object]], numeric: list[str]) -> list[list[str]]:
    with captured_stdout() as out:
        emit_csv(fields, rows, numeric=numeric)
    return list(csv.reader(io.StringIO(out.getvalue(), newline="")))


CSV_TEXT = st.text()


@given(CSV_TEXT, CSV_TEXT, st.integers(min_value=1, max_value=10**11))
def test_csv_round_trips_to_the_neutralized_text(note: str, name: str, cents: int) -> None:
    from payalloc.money import plain_cents

    amount = plain_cents(cents)
    rows = emitted(["name", "note", "amount", "count", "flag", "empty"],
                   [{"name": name, "note": note, "amount": amount, "count": 7, "flag": True, "empty": None}],
                   ["amount"])
    assert rows == [["name", "note", "amount", "count", "flag", "empty"],
                    [inert(neutralize(name)), inert(neutralize(note)), amount, "7", "true", ""]]


def inert(text: str) -> str:
    """A cell as CSV writes it, to a file too: controls but tab, LF and CR as U+FFFD."""
    return "".join("\ufffd" if unicodedata.category(c) == "Cc" and c not in "\t\n\r" else c for c in text)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_csv_on_a_terminal_carries_no_escape_sequence_nor_does_a_file() -> None:
    row = {"name": "O\x1b]8;;https://x\x1b\\link", "note": "\x00=cmd", "reason": "why\u202eyhw", "amount": "-5.00"}
    fields = list(row)
    old, sys.stdout = sys.stdout, _Terminal()
    try:
        emit_csv(fields, [row], numeric=["amount"])
        shown = sys.stdout.getvalue()
    finally:
        sys.stdout = old
    assert not UNSAFE.search(shown.replace("\r\n", "\n")), repr(shown)
    assert list(csv.reader(io.StringIO(shown, newline="")))[1] == [
        "O\ufffd]8;;https://x\ufffd\\link", "'\ufffd=cmd", "why\ufffdyhw", "-5.00"]
    with captured_stdout() as out:
        emit_csv(fields, [row], numeric=["amount"])
    written = out.getvalue()  # `cat` or `less -R` shows a file on a terminal: no ESC, BEL, C1 in it
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]", written), repr(written)
    assert list(csv.reader(io.StringIO(written, newline="")))[1] == [
        "O\ufffd]8;;https://x\ufffd\\link", "'\ufffd=cmd", row["reason"], "-5.00"]


@pytest.mark.parametrize("command", [["client", "list"], ["payment", "list"], ["unallocated"]], ids=" ".join)
def test_csv_listings_write_no_terminal_escape_from_a_name_or_a_note(
    cli: Cli, conn: sqlite3.Connection, command: list[str]
) -> None:
    """A name imported with OSC (retitle the terminal) and CSI (clear it) sequences: a CSV listing,
    piped to a file or `od`, carries U+FFFD where ESC, BEL and C1 were; a note's tab and lines stay."""
    hostile = "A\x1b]0;owned\x07\x1b[2J\x9b31m"
    imp(conn, "clients", csv_text([["client_id", "name"], ["C1", hostile]]))
    imp(conn, "payments", csv_text([
        ["payment_id", "client_id", "received_date", "amount", "apply_to", "note"],
        ["P1", "C1", "2026-01-02", "5.00", "specific", f"x\ty\nz{hostile}"]]))
    result = cli(*command, "--csv")
    assert result.exit_code == 0, result.stderr
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]", result.stdout.replace("\r\n", "\n")), \
        repr(result.stdout)
    assert "A\ufffd]0;owned\ufffd\ufffd[2J\ufffd31m" in result.stdout
    if command == ["payment", "list"]:
        assert "x\ty\nzA\ufffd]0;owned" in result.stdout


def test_negative_amounts_stay_numeric() -> None:
    rows = emitted(["amount", "text"], [{"amount": "-12.50", "text": "-12.50"}], ["amount"])
    assert rows[1] == ["-12.50", "'-12.50"]  # an amount column is numeric; the same text elsewhere is not


def test_lone_cr_in_a_cell_round_trips() -> None:
    rows = emitted(["note"], [{"note": "ok\r=1+1"}], [])
    assert rows == [["note"], ["'ok\r=1+1"]]


@pytest.mark.parametrize("payload", ["\u3000=1+1", "\u2003@SUM(A1)", "\x0b=1", "\x00=1", "a\u2028=1"])
def test_other_leading_white_space_is_neutralized(payload: str) -> None:
    assert neutralize(payload).startswith("'")


def test_client_and_payment_csv_exports_are_neutralized(cli: Cli, conn: sqlite3.Connection) -> None:
    imp(conn, "clients", csv_text([
        ["client_id", "name", "responsible_party"],
        ["C1", "=HYPERLINK(\"http://evil\",\"click\")", "+1 555 0100"],
        ["C2", "-Smith", "@admin"],
        ["C3", "Plain Name", ""],
    ]))
    imp(conn, "payments", csv_text([
        ["payment_id", "client_id", "received_date", "amount", "apply_to", "reference", "note"],
        ["P1", "C1", "2026-01-02", "1,234.50", "oldest", "=1+1", "first line\n  =cmd|' /C calc'!A0"],
        ["P2", "C3", "2026-01-03", "0.01", "specific", "1042", "Mailed with forms, \"urgent\""],
    ]))
    clients = list(csv.reader(io.StringIO(cli("client", "list", "--csv").stdout, newline="")))
    assert clients[0][:3] == ["client_id", "name", "responsible_party"]
    assert clients[1][:3] == ["C1", "'=HYPERLINK(\"http://evil\",\"click\")", "'+1 555 0100"]
    assert clients[2][:3] == ["C2", "'-Smith", "'@admin"]
    assert clients[3][:3] == ["C3", "Plain Name", ""]
    result = cli("payment", "list", "--csv")
    assert result.exit_code == 0
    payments = list(csv.reader(io.StringIO(result.stdout, newline="")))
    head = payments[0]
    by_id = {r[0]: dict(zip(head, r, strict=True)) for r in payments[1:]}
    assert by_id["P1"]["amount"] == "1234.50" and by_id["P1"]["unapplied"] == "1234.50"
    assert by_id["P2"]["amount"] == "0.01"
    assert by_id["P1"]["reference"] == "'=1+1"
    assert by_id["P1"]["note"] == "'first line\n  =cmd|' /C calc'!A0"
    assert by_id["P2"]["note"] == "Mailed with forms, \"urgent\"" and by_id["P2"]["reference"] == "1042"
    for record in payments[1:]:
        for field, cell in zip(head, record, strict=True):
            assert cell.startswith("'") or not dangerous(cell) or field in ("amount", "unapplied"), (field, cell)
