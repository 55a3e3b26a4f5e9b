"""CSV import (spec "CSV import formats"): the sample files, header handling, file order, references,
whole file or nothing, every problem located, re-import semantics, in-file duplicates (fast and slow
paths, across batches), --dry-run, --json, stdin, and the fast path against the row-by-row one (batches,
line numbers, whole imports)."""

from __future__ import annotations

import contextlib
import csv
import gc
import io
import json
import random
import re
import shutil
import sqlite3
from collections.abc import Callable
from functools import partialmethod
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from payalloc.csv_import import (
    BATCH_ROWS,
    FIELDS,
    LAYOUTS,
    Batch,
    CleanBatch,
    CsvFile,
    _Columns,
    _Row,
    _Slow,
)
from payalloc.csv_text import numbered
from payalloc.errors import InputError, ProblemsError
from payalloc.ledger.connection import init_ledger, open_ledger, write_txn
from payalloc.services import payments
from payalloc.services.imports import ImportSummary, _Importer, import_csv
from tests.builders import add_charge, add_client
from tests.conftest import SAMPLE, Cli

NOW = "2026-11-23T02:00:00Z"
KIND_ORDER = ("clients", "events", "charges", "payments")
SAMPLE_COUNTS = {"clients": 12, "events": 5, "charges": 60, "payments": 25}
BIG = BATCH_ROWS + 1000  # rows: enough to cross a batch boundary


def imp(conn: sqlite3.Connection, kind: str, data: str | bytes, *, name: str = "in.csv",
        dry_run: bool = False) -> ImportSummary:
    raw = data.encode() if isinstance(data, str) else data
    return import_csv(conn, kind, io.BytesIO(raw), name, now=NOW, staff="tester", dry_run=dry_run)


def load_samples(conn: sqlite3.Connection, kinds: tuple[str, ...] = KIND_ORDER) -> None:
    for kind in kinds:
        imp(conn, kind, (SAMPLE / f"{kind}.csv").read_bytes(), name=f"{kind}.csv")


def data_only(lines: list[str]) -> list[str]:
    """A dump without the audit trail (an import, even of nothing new, is an audited action)."""
    return [line for line in lines if not line.startswith('INSERT INTO "audit"')]


def problems_of(error: ProblemsError) -> list[str]:
    return [str(p) for p in error.problems]


def keys(conn: sqlite3.Connection, table: str, key: str) -> list[str]:
    return [r[0] for r in conn.execute(f"SELECT {key} FROM {table} ORDER BY id")]


def charges_file(n: int, *, client: str = "C-1001", prefix: str = "BX", amount: str = "10.00") -> list[str]:
    return ["charge_id,client_id,service_date,amount,payer"] + [
        f"{prefix}{i:05d},{client},2026-01-{1 + i % 28:02d},{amount},self_pay" for i in range(n)
    ]


def write(tmp_path: Path, name: str, lines: list[str] | str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(lines, bytes):
        path.write_bytes(lines)
    else:
        path.write_text(lines if isinstance(lines, str) else "\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- the sample files -----------------------------------------------------------------------------


def test_sample_files_import_then_reimport_changes_nothing(cli: Cli, dump: Callable[[], list[str]]) -> None:
    for kind in KIND_ORDER:
        result = cli("import", kind, str(SAMPLE / f"{kind}.csv"), "--json")
        assert result.exit_code == 0, result.stderr
        summary = json.loads(result.stdout)
        assert (summary["inserted"], summary["updated"], summary["unchanged"]) == (SAMPLE_COUNTS[kind], 0, 0)
        assert summary["warnings"] == []
    before = dump()
    for kind in KIND_ORDER:
        result = cli("import", kind, str(SAMPLE / f"{kind}.csv"))
        assert result.exit_code == 0, result.stderr
        assert f"imported 0 new, 0 updated, {SAMPLE_COUNTS[kind]} unchanged {kind}" in result.stdout
    after = dump()
    assert data_only(after) == data_only(before)
    assert len(after) == len(before) + 4  # one audit row per import, nothing else
    assert cli("check").exit_code == 0


def test_sample_values_are_stored_exactly(conn: sqlite3.Connection) -> None:
    load_samples(conn)
    # "$200" in the file is 200.00; a quoted note with commas and quotes survives.
    assert conn.execute("SELECT amount_cents FROM payments WHERE payment_key = 'P-3002'").fetchone() == (20000,)
    assert conn.execute("SELECT note FROM payments WHERE payment_key = 'P-3004'").fetchone() == (
        "Apply to the evaluation only, per client",)
    assert conn.execute("SELECT status FROM payments WHERE payment_key = 'P-3012'").fetchone() == ("pending",)
    assert conn.execute("SELECT typeof(amount_cents) FROM charges GROUP BY 1").fetchall() == [("integer",)]
    ev = conn.execute("SELECT e.event_key FROM payments p JOIN events e ON e.id = p.event_id"
                      " WHERE p.payment_key = 'P-3006'").fetchone()
    assert ev == ("E-501",)


# --- header ---------------------------------------------------------------------------------------


def test_header_in_any_column_order_gives_the_same_ledger(tmp_path: Path) -> None:
    rows = list((SAMPLE / "charges.csv").read_text().splitlines())
    parsed = [next(iter(__import__("csv").reader([line]))) for line in rows]
    order = list(range(len(parsed[0])))
    random.Random(7).shuffle(order)
    assert order != sorted(order)
    out = io.StringIO()
    w = __import__("csv").writer(out, lineterminator="\n")
    for cells in parsed:
        w.writerow([cells[i] for i in order])
    contents = []
    for name, data in (("a.db", (SAMPLE / "charges.csv").read_bytes()), ("b.db", out.getvalue().encode())):
        init_ledger(tmp_path / name)
        c = open_ledger(tmp_path / name)
        load_samples(c, ("clients", "events"))
        assert imp(c, "charges", data).inserted == 60
        contents.append(c.execute("SELECT * FROM charges ORDER BY id").fetchall())
        c.close()
    assert contents[0] == contents[1]


def test_header_names_are_trimmed_and_case_insensitive(conn: sqlite3.Connection) -> None:
    summary = imp(conn, "clients", " Client_ID ,NAME\nC1,Ann\n")
    assert summary.inserted == 1 and summary.warnings == []
    assert conn.execute("SELECT client_key, name FROM clients").fetchall() == [("C1", "Ann")]


def test_header_names_may_use_spaces_or_hyphens_for_underscores(conn: sqlite3.Connection) -> None:
    summary = imp(conn, "clients", "Client ID,Name,Responsible  -  Party\nC1,Ann,Bo\n")
    assert summary.inserted == 1 and summary.warnings == []
    assert conn.execute("SELECT client_key, responsible_party FROM clients").fetchall() == [("C1", "Bo")]
    with pytest.raises(InputError, match="line 1: column client_id appears twice in the header"):
        imp(conn, "clients", "client id,client_id,name\nC2,C2,Cy\n")


def test_unknown_columns_are_warned_about_and_ignored(cli: Cli, tmp_path: Path, ledger_path: Path) -> None:
    path = write(tmp_path, "clients.csv", ["client_id,ssn,name,Fax Number", "C1,000-00-0000,Ann,555"])
    result = cli("import", "clients", str(path))
    assert result.exit_code == 0, result.stderr
    assert "ignoring unknown columns ssn, Fax Number" in result.stderr  # named as the file has them
    assert "000-00-0000" not in result.stdout + result.stderr
    assert "imported 1 new" in result.stdout
    c = sqlite3.connect(ledger_path)
    assert c.execute("SELECT client_key, name, responsible_party FROM clients").fetchall() == [("C1", "Ann", None)]
    assert "000-00-0000" not in "\n".join(c.iterdump())
    c.close()


def test_excel_rows_of_empty_cells_are_skipped_like_blank_lines(conn: sqlite3.Connection) -> None:
    """Excel writes a row of commas for a row whose cells it once formatted: no data, not a row."""
    data = b"\xef\xbb\xbfclient_id,name\r\nC1,Ann\r\n,\r\nC2,Bob\r\n,\r\n,\r\n\r\n"
    summary = imp(conn, "clients", data)
    assert (summary.inserted, summary.warnings) == (2, [])
    assert keys(conn, "clients", "client_key") == ["C1", "C2"]
    big = "\r\n".join(charges_file(BIG, client="C1") + [",,,,"] * 3) + "\r\n"
    assert imp(conn, "charges", big).inserted == BIG
    with pytest.raises(ProblemsError) as refused:  # a row with one cell given is still a row
        imp(conn, "clients", "client_id,name\nC3,Cy\n,\n,Dee\n")
    assert problems_of(refused.value) == ["in.csv: line 4, column client_id: is required"]


def test_excel_trailing_empty_columns_are_ignored_with_one_warning(conn: sqlite3.Connection) -> None:
    """Excel saves columns it once formatted as blank header cells (",,," at the end of each line)."""
    summary = imp(conn, "clients", b"\xef\xbb\xbfclient_id,name,,,\r\nC1,Ann,,,\r\nC2,Bob,,,\r\n")
    assert summary.inserted == 2
    assert summary.warnings == ["in.csv: ignoring unknown column (blank)"]
    assert conn.execute("SELECT client_key, name FROM clients ORDER BY id").fetchall() == [("C1", "Ann"), ("C2", "Bob")]
    with pytest.raises(InputError, match="column name appears twice"):  # a named column twice stays ambiguous
        imp(conn, "clients", "client_id,name,,Name\nC3,Cy,,Cyd\n")


def test_utf8_bom_is_accepted(conn: sqlite3.Connection) -> None:
    summary = imp(conn, "clients", b"\xef\xbb\xbfclient_id,name\nC1,Jos\xc3\xa9\n")
    assert summary.inserted == 1 and summary.warnings == []
    assert conn.execute("SELECT client_key, name FROM clients").fetchall() == [("C1", "José")]


def test_header_only_is_accepted_with_a_warning(conn: sqlite3.Connection) -> None:
    summary = imp(conn, "payments", (SAMPLE / "payments.csv").read_text().splitlines()[0] + "\n")
    assert (summary.inserted, summary.updated, summary.unchanged) == (0, 0, 0)
    assert any("header but no rows" in w for w in summary.warnings)


# --- order, references -----------------------------------------------------------------------------


def test_rows_enter_in_file_order(conn: sqlite3.Connection) -> None:
    names = [f"K{random.Random(3).randrange(10**6):06d}-{i}" for i in range(BIG)]
    random.Random(5).shuffle(names)
    imp(conn, "clients", "client_id,name\n" + "".join(f"{k},N\n" for k in names))
    assert keys(conn, "clients", "client_key") == names
    lines = charges_file(BIG, client=names[0])
    order = lines[1:]
    random.Random(9).shuffle(order)
    imp(conn, "charges", "\n".join([lines[0], *order]) + "\n")
    assert keys(conn, "charges", "charge_key") == [line.split(",")[0] for line in order]


def test_references_are_checked_with_line_and_column(conn: sqlite3.Connection, dump: Callable[[], list[str]]) -> None:
    load_samples(conn, ("clients", "events"))
    before = dump()
    with pytest.raises(ProblemsError) as info:
        imp(conn, "charges", "\n".join([
            "charge_id,client_id,service_date,amount,payer,event_id",
            "X1,C-1001,2026-01-01,10.00,self_pay,",
            "X2,C-9999,2026-01-01,10.00,self_pay,",
            "X3,C-1001,2026-01-01,10.00,self_pay,E-501",  # E-501 is C-1004's
            "X4,C-1004,2026-01-01,10.00,self_pay,E-404",
        ]) + "\n", name="ch.csv")
    assert problems_of(info.value) == [
        "ch.csv: line 3, column client_id: client_id C-9999 is not in the ledger",
        "ch.csv: line 4, column event_id: event_id E-501 belongs to another client",
        "ch.csv: line 5, column event_id: event_id E-404 is not in the ledger",
    ]
    with pytest.raises(ProblemsError) as info:
        imp(conn, "payments", "\n".join([
            "payment_id,client_id,received_date,amount,apply_to,event_id",
            "Y1,C-1001,2026-01-01,10.00,event,E-501",
            "Y2,C-1004,2026-01-01,10.00,event,E-501",
        ]) + "\n", name="p.csv")
    assert problems_of(info.value) == ["p.csv: line 2, column event_id: event_id E-501 belongs to another client"]
    with pytest.raises(ProblemsError) as info:
        imp(conn, "events", "event_id,client_id,scheduled_date\nE-9,C-0000,2026-01-01\n", name="e.csv")
    assert problems_of(info.value) == ["e.csv: line 2, column client_id: client_id C-0000 is not in the ledger"]
    assert dump() == before


def test_reference_to_a_client_earlier_in_the_import_sequence(conn: sqlite3.Connection) -> None:
    imp(conn, "clients", "client_id,name\nC1,Ann\n")
    assert imp(conn, "events", "event_id,client_id,scheduled_date\nE1,C1,2026-01-01\n").inserted == 1
    s = imp(conn, "payments", "payment_id,client_id,received_date,amount,apply_to,event_id\nP1,C1,2026-01-02,5,event,E1\n")
    assert s.inserted == 1


# --- whole file or nothing; every problem reported -----------------------------------------------


def test_bad_last_row_of_a_big_file_writes_nothing(cli: Cli, conn: sqlite3.Connection, tmp_path: Path,
                                                  dump: Callable[[], list[str]]) -> None:
    load_samples(conn, ("clients",))
    lines = charges_file(BIG)
    lines[-1] = lines[-1].replace("10.00", "10.005")
    path = write(tmp_path, "big.csv", lines)
    before = dump()
    result = cli("import", "charges", str(path))
    assert result.exit_code == 3
    assert f"big.csv: line {BIG + 1}, column amount: '10.005' has more than 2 decimals: an amount is in whole cents, like 1,234.50" in result.stderr
    assert "nothing was imported" in result.stderr
    assert dump() == before
    assert conn.execute("SELECT count(*) FROM charges").fetchone() == (0,)


def test_every_invalid_row_is_reported_first_50_then_a_count(cli: Cli, conn: sqlite3.Connection, tmp_path: Path,
                                                            dump: Callable[[], list[str]]) -> None:
    load_samples(conn, ("clients",))
    lines = charges_file(200)
    bad = list(range(5, 200, 3))  # 65 bad rows (indexes into lines[1:])
    for i in bad:
        lines[i + 1] = lines[i + 1].replace("2026-01-", "2026-13-")
    lines[2] = lines[2].replace("10.00", "-1").replace("self_pay", "selfpay")  # two problems on line 3
    path = write(tmp_path, "many.csv", lines)
    before = dump()
    result = cli("import", "charges", str(path))
    assert result.exit_code == 3
    err = result.stderr.splitlines()
    assert err[0] == f"error: {path}: {len(bad) + 2} problems; nothing was imported"
    listed = [line.strip() for line in err[1:]]
    assert len(listed) == 51
    assert listed[0].startswith(f"{path}: line 3, column amount: '-1'")
    assert listed[1] == f"{path}: line 3, column payer: 'selfpay' is not one of insurance, patient_resp, self_pay"
    assert listed[2].startswith(f"{path}: line {bad[0] + 2}, column service_date: '2026-13-")
    assert "YYYY-MM-DD" in listed[2]
    assert listed[-1] == f"... and {len(bad) + 2 - 50} more problems"
    assert dump() == before


def test_problems_are_listed_in_line_order_whatever_finds_them(conn: sqlite3.Connection) -> None:
    """Reference problems (found after a batch is parsed) and cell problems (found while parsing)
    come out by line, so the first 50 shown are the first 50 of the file."""
    load_samples(conn, ("clients", "events"))
    with pytest.raises(ProblemsError) as info:
        imp(conn, "payments", "\n".join([
            "payment_id,client_id,received_date,amount,apply_to,event_id",
            "P-11,C-404,2026-11-01,5,oldest,",  # line 2: unknown client (a reference)
            "P-12,C-1001,2026-11-01,5,specific,E-501",  # line 3: event_id with specific (a cell)
            "P-13,C-1001,2026-11-01,5,oldest,,",  # line 4: a field too many
            "P-14,C-405,2026-11-01,5,oldest,",  # line 5: unknown client
        ]) + "\n", name="p.csv")
    lines = [re.sub(r"(line \d+).*", r"\1", p) for p in problems_of(info.value)]
    assert lines == [f"p.csv: line {n}" for n in (2, 3, 4, 5)]


def test_the_problems_kept_to_show_are_the_first_lines(conn: sqlite3.Connection,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("payalloc.services.imports.MAX_PROBLEMS_KEPT", 3)
    load_samples(conn, ("clients",))
    lines = charges_file(10)
    for i in (2, 4, 6, 8):  # unknown clients, found after the batch is parsed
        lines[i] = lines[i].replace("C-1001", "C-404")
    lines[9] = lines[9].replace("10.00", "-1")  # a bad cell, found while parsing
    with pytest.raises(ProblemsError) as info:
        imp(conn, "charges", "\n".join(lines) + "\n", name="c.csv")
    assert info.value.total == 5
    assert [p.split(",")[0] for p in problems_of(info.value)] == [f"c.csv: line {n}" for n in (3, 5, 7)]


def test_problems_of_every_column_are_located(conn: sqlite3.Connection) -> None:
    load_samples(conn, ("clients", "events"))
    header = "payment_id,client_id,received_date,amount,apply_to,event_id,method,status"
    with pytest.raises(ProblemsError) as info:
        imp(conn, "payments", "\n".join([
            header,
            ",C-1001,2026-01-01,1,oldest,,cash,ready",
            "P1,C-1001,01/02/2026,1,oldest,,cash,ready",
            "P2,C-1001,2026-01-01,1e3,oldest,,cash,ready",
            "P3,C-1001,2026-01-01,1,newest,,cash,ready",
            "P4,C-1001,2026-01-01,1,oldest,,bitcoin,ready",
            "P5,C-1001,2026-01-01,1,oldest,,cash,void",
            "P6,C-1004,2026-01-01,1,event,,cash,ready",
            "P7,C-1004,2026-01-01,1,oldest,E-501,cash,ready",
            "P8,C-1001,2026-01-01,1,oldest,,cash",
        ]) + "\n", name="p.csv")
    got = problems_of(info.value)
    expect = [
        ("line 2, column payment_id", "is required"),
        ("line 3, column received_date", "YYYY-MM-DD"),
        ("line 4, column amount", "'1e3' is not an amount"),
        ("line 5, column apply_to", "'newest' is not one of event, oldest, specific"),
        ("line 6, column method", "'bitcoin' is not one of"),
        ("line 7, column status", "'void' is not one of pending, ready"),
        ("line 8, column event_id", "is required when apply_to is event"),
        ("line 9, column event_id", "must be empty when apply_to is oldest"),
        ("line 10", "has 7 fields but the header has 8"),
    ]
    assert len(got) == len(expect)
    for line, (where, why) in zip(got, expect, strict=True):
        assert line.startswith(f"p.csv: {where}: ") and why in line, line


def test_a_spaced_amount_is_quoted_and_a_name_is_not_in_a_whole_sentence(conn: sqlite3.Connection) -> None:
    """An amount typed with a space ("$ 5", "5.00 USD") is a number typed wrong: quoted. A name or a
    phone number in the column is not quoted, and the sentence still says what was wrong."""
    load_samples(conn, ("clients",))
    rows = ["$ 5", "5.00 USD", "usd 7", "Jane Doe", "555 0100"]
    with pytest.raises(ProblemsError) as info:
        imp(conn, "payments", "payment_id,client_id,received_date,amount,apply_to,method\n" + "".join(
            f"P{i},C-1001,2026-01-01,{amount},oldest,cash\n" for i, amount in enumerate(rows)) +
            "P9,C-1001,2026-01-01,5,Jane Doe,cash\n", name="p.csv")
    assert problems_of(info.value) == [
        "p.csv: line 2, column amount: '$ 5' is not an amount like 1,234.50",
        "p.csv: line 3, column amount: '5.00 USD' is not an amount like 1,234.50",
        "p.csv: line 4, column amount: 'usd 7' is not an amount like 1,234.50",
        "p.csv: line 5, column amount: the value (not shown: it may be a name) is not an amount like 1,234.50",
        "p.csv: line 6, column amount: the value (not shown: it may be a name) is not an amount like 1,234.50",
        "p.csv: line 7, column apply_to: the value (not shown: it may be a name) is not one of event, oldest,"
        " specific",
    ]


# --- re-import ------------------------------------------------------------------------------------


def test_reimport_updates_clients_and_events(conn: sqlite3.Connection) -> None:
    load_samples(conn)
    s = imp(conn, "clients", "client_id,name,responsible_party\nC-1001,Avery Brooks-Lee,\nC-1002,Jordan Diaz,Maria Diaz\n")
    assert (s.inserted, s.updated, s.unchanged) == (0, 1, 1)
    assert conn.execute("SELECT name FROM clients WHERE client_key = 'C-1001'").fetchone() == ("Avery Brooks-Lee",)
    s = imp(conn, "clients", "client_id,name,responsible_party\nC-1003,Sam Okafor,Pat Okafor\n")
    assert (s.updated, conn.execute("SELECT responsible_party FROM clients WHERE client_key = 'C-1003'").fetchone()) \
        == (1, ("Pat Okafor",))
    s = imp(conn, "events", "event_id,client_id,scheduled_date,status\nE-502,C-1005,2026-12-02,done\n"
                            "E-501,C-1004,2026-10-06,done\n")
    assert (s.inserted, s.updated, s.unchanged) == (0, 1, 1)
    assert conn.execute("SELECT status FROM events WHERE event_key = 'E-502'").fetchone() == ("done",)
    # An older export (done -> scheduled) leaves the ledger as it is, with a warning.
    s = imp(conn, "events", "event_id,client_id,scheduled_date,status\nE-501,C-1004,2026-10-06,scheduled\n")
    assert (s.updated, s.unchanged) == (0, 1)
    assert s.warnings == ["in.csv: event E-501 has an older status in the file than in the ledger; it was left as it is"]
    assert conn.execute("SELECT status FROM events WHERE event_key = 'E-501'").fetchone() == ("done",)
    s = imp(conn, "events", "event_id,client_id,scheduled_date,status\nE-501,C-1004,2026-10-06,scheduled\n"
                            "E-502,C-1005,2026-12-02,scheduled\n")
    assert s.warnings == ["in.csv: events E-501 and E-502 have an older status in the file than in the ledger;"
                          " they were left as they are"]


def test_reimport_a_column_the_file_lacks_keeps_what_the_ledger_has(conn: sqlite3.Connection,
                                                                   dump: Callable[[], list[str]]) -> None:
    """A narrower export says nothing of the columns it lacks: a clients file without
    responsible_party does not erase them, a payments file without status reconciles no pending
    check, a charges file without description is no conflict, an events file without status
    moves no event back (and warns of none)."""
    load_samples(conn)
    before = data_only(dump())
    s = imp(conn, "clients", "client_id,name\nC-1002,Jordan Diaz\n")
    assert (s.updated, s.unchanged) == (0, 1)
    s = imp(conn, "clients", "client_id,name\nC-1002,Jordan Q. Diaz\n")  # the name is given: updated
    assert s.updated == 1
    assert conn.execute("SELECT name, responsible_party FROM clients WHERE client_key = 'C-1002'").fetchone() \
        == ("Jordan Q. Diaz", "Maria Diaz")
    s = imp(conn, "payments", "payment_id,client_id,received_date,amount,apply_to\nP-3012,C-1007,2026-09-05,255.00,oldest\n")
    assert (s.updated, s.unchanged) == (0, 1)
    assert conn.execute("SELECT status FROM payments WHERE payment_key = 'P-3012'").fetchone() == ("pending",)
    s = imp(conn, "charges", "charge_id,client_id,service_date,amount,payer\nCH-2001,C-1001,2026-08-04,150.00,self_pay\n")
    assert (s.unchanged, s.warnings) == (1, [])
    s = imp(conn, "events", "event_id,client_id,scheduled_date\nE-501,C-1004,2026-10-06\n")  # done in the ledger
    assert (s.unchanged, s.warnings) == (1, [])
    after = data_only(dump())
    assert [line for line in after if line not in before] == [
        line for line in after if "Jordan Q. Diaz" in line]
    # A column given empty still says "none": the responsible party is cleared, as the file says.
    s = imp(conn, "clients", "client_id,name,responsible_party\nC-1002,Jordan Q. Diaz,\n")
    assert s.updated == 1
    assert conn.execute("SELECT responsible_party FROM clients WHERE client_key = 'C-1002'").fetchone() == (None,)
    payments.void_payment(conn, "P-3001", reason="check returned", now=NOW, staff="clerk1")
    s = imp(conn, "payments", "payment_id,client_id,received_date,amount,apply_to\nP-3001,C-1001,2026-08-20,300.00,oldest\n")
    assert (s.unchanged, s.warnings) == (1, [])  # the file says nothing of its status: no "not void in the file"


def test_reimport_payment_pending_to_ready_is_an_update(conn: sqlite3.Connection) -> None:
    load_samples(conn)
    text = (SAMPLE / "payments.csv").read_text().replace(
        "P-3012,C-1007,2026-09-05,255.00,oldest,,check,889,pending", "P-3012,C-1007,2026-09-05,255.00,oldest,,check,889,ready")
    s = imp(conn, "payments", text)
    assert (s.inserted, s.updated, s.unchanged) == (0, 1, 24)
    assert conn.execute("SELECT status FROM payments WHERE payment_key = 'P-3012'").fetchone() == ("ready",)
    # ready -> pending is not a way back: unchanged
    s = imp(conn, "payments", (SAMPLE / "payments.csv").read_text())
    assert (s.updated, s.unchanged) == (0, 25)
    assert conn.execute("SELECT status FROM payments WHERE payment_key = 'P-3012'").fetchone() == ("ready",)



def test_reimport_over_a_voided_payment_keeps_it_void_and_says_so(conn: sqlite3.Connection) -> None:
    load_samples(conn)
    payments.void_payment(conn, "P-3002", reason="check returned NSF", now=NOW, staff="clerk1")
    s = imp(conn, "payments", (SAMPLE / "payments.csv").read_text())  # yesterday's export: P-3002 ready
    assert (s.inserted, s.updated, s.unchanged) == (0, 0, 25)
    assert conn.execute("SELECT status FROM payments WHERE payment_key = 'P-3002'").fetchone() == ("void",)
    assert s.warnings == ["in.csv: payment P-3002 is void in the ledger, not in the file; it stays void"]
    payments.void_payment(conn, "P-3003", reason="card chargeback", now=NOW, staff="clerk1")
    s = imp(conn, "payments", (SAMPLE / "payments.csv").read_text())
    assert s.warnings == ["in.csv: payments P-3002 and P-3003 are void in the ledger, not in the file; they stay void"]
    for key in ("P-3001", "P-3004", "P-3005", "P-3006", "P-3007"):
        payments.void_payment(conn, key, reason="returned", now=NOW, staff="clerk1")
    s = imp(conn, "payments", (SAMPLE / "payments.csv").read_text())  # in file order, five named
    assert s.warnings == ["in.csv: payments P-3001, P-3002, P-3003, P-3004, P-3005 and 2 more are void in the ledger,"
                          " not in the file; they stay void"]

@pytest.mark.parametrize(
    ("kind", "old", "new", "expect"),
    [
        ("charges", "CH-2001,C-1001,2026-08-04,150.00", "CH-2001,C-1001,2026-08-04,151.00",
         "line 2, column amount: charge_id CH-2001 is already in the ledger with a different amount "
         "(ledger 150.00, file 151.00); charges cannot be changed by import"),
        ("charges", "CH-2001,C-1001,2026-08-04,150.00", "CH-2001,C-1001,2026-08-05,150.00",
         "line 2, column service_date: charge_id CH-2001 is already in the ledger with a different service_date "
         "(ledger 2026-08-04, file 2026-08-05)"),
        ("charges", "CH-2001,C-1001,2026-08-04,150.00,self_pay", "CH-2001,C-1001,2026-08-04,150.00,insurance",
         "column payer: charge_id CH-2001 is already in the ledger with a different payer"),
        ("charges", "CH-2001,C-1001,", "CH-2001,C-1002,", "column client_id: charge_id CH-2001 is already"),
        ("payments", "P-3001,C-1001,2026-08-20,300.00", "P-3001,C-1001,2026-08-20,$300.01",
         "line 2, column amount: payment_id P-3001 is already in the ledger with a different amount "
         "(ledger 300.00, file 300.01); payments cannot be changed by import"),
        ("payments", "P-3001,C-1001,2026-08-20,300.00,oldest", "P-3001,C-1001,2026-08-20,300.00,specific",
         "column apply_to: payment_id P-3001 is already in the ledger with a different apply_to"),
        ("payments", "AUTH 559812", "AUTH 559813", "column reference: payment_id P-3001 is already"),
        ("events", "E-501,C-1004,2026-10-06", "E-501,C-1004,2026-10-07",
         "column scheduled_date: event_id E-501 is already in the ledger with a different scheduled_date"),
    ],
)
def test_reimport_conflict_is_refused_naming_the_field(
    cli: Cli, conn: sqlite3.Connection, tmp_path: Path, dump: Callable[[], list[str]],
    kind: str, old: str, new: str, expect: str,
) -> None:
    load_samples(conn)
    text = (SAMPLE / f"{kind}.csv").read_text()
    line = text.splitlines()[1]
    assert old in line
    path = write(tmp_path, f"{kind}.csv", "\n".join([text.splitlines()[0], line.replace(old, new)]) + "\n")
    before = dump()
    result = cli("import", kind, str(path))
    assert result.exit_code == 3
    assert f"{path}: line 2, {expect.removeprefix('line 2, ')}" in result.stderr
    assert dump() == before


# --- duplicates inside one file --------------------------------------------------------------------


@pytest.mark.parametrize("gap", [1, BIG - 10], ids=["same-batch", "across-batches"])
@pytest.mark.parametrize("ledger", ["empty-table", "table-has-rows"])
def test_duplicate_id_in_one_file_is_refused(conn: sqlite3.Connection, dump: Callable[[], list[str]],
                                              gap: int, ledger: str) -> None:
    add_client(conn, "C-1001")
    if ledger == "table-has-rows":
        add_charge(conn, "OLD-1", "C-1001", "2026-01-01", 500)
    lines = charges_file(BIG)
    lines[1 + 5 + gap] = lines[1 + 5].replace("10.00", "11.00")  # charge id of line 7 again, different amount
    before = dump()
    with pytest.raises(ProblemsError) as info:
        imp(conn, "charges", "\n".join(lines) + "\n", name="dup.csv")
    assert problems_of(info.value) == [
        f"dup.csv: line {7 + gap}, column charge_id: charge_id BX00005 appears twice in this file (first on line 7)"]
    assert dump() == before


@pytest.mark.parametrize("gap", [1, BIG - 10], ids=["same-batch", "across-batches"])
def test_duplicate_id_in_a_file_for_an_empty_clients_table(conn: sqlite3.Connection, dump: Callable[[], list[str]],
                                                           gap: int) -> None:
    clients = ["client_id,name"] + [f"D{i:05d},N" for i in range(BIG)]
    clients[2 + gap] = "D00001,Other"
    before = dump()
    with pytest.raises(ProblemsError) as info:
        imp(conn, "clients", "\n".join(clients) + "\n", name="c.csv")
    assert problems_of(info.value) == [
        f"c.csv: line {3 + gap}, column client_id: client_id D00001 appears twice in this file (first on line 3)"]
    assert dump() == before


def test_duplicate_of_an_id_already_in_the_ledger_across_batches(conn: sqlite3.Connection,
                                                                 dump: Callable[[], list[str]]) -> None:
    """An id the ledger had before, named twice in one file with a batch boundary between: refused,
    not counted updated twice (last one winning)."""
    load_samples(conn, ("clients",))
    rows = ["client_id,name", "C-1001,First Name"] + [f"N{i:05d},X" for i in range(BIG)] + ["C-1001,Second Name"]
    before = dump()
    with pytest.raises(ProblemsError) as info:
        imp(conn, "clients", "\n".join(rows) + "\n", name="c.csv")
    assert problems_of(info.value) == [
        f"c.csv: line {BIG + 3}, column client_id: client_id C-1001 appears twice in this file (first on line 2)"]
    assert dump() == before


@pytest.mark.parametrize("ledger", ["empty-table", "table-has-rows"])
def test_duplicate_across_batches_names_the_first_line_after_multi_line_rows(
        conn: sqlite3.Connection, ledger: str) -> None:
    """The first line of a repeat from an earlier batch is that row's own line, also when rows
    before it span several lines (quoted line breaks in a description)."""
    add_client(conn, "C-1001")
    if ledger == "table-has-rows":
        add_charge(conn, "OLD-1", "C-1001", "2026-01-01", 500)
    head, *base = charges_file(BIG)
    rows = [row + ",," for row in base]
    rows[0] = base[0] + ',,"first line\nsecond line\r\nthird"'  # lines 2-4
    rows[1] = base[1] + ",,plain"  # line 5
    rows[2] = base[2] + ',,"a\rb"'  # lines 6-7
    with pytest.raises(ProblemsError) as info:
        imp(conn, "charges", "\n".join([head + ",service_code,description", *rows, rows[3], rows[1]]) + "\n",
            name="m.csv")
    last = 1 + BIG + 3  # the header, then BIG rows spanning BIG + 3 lines
    assert problems_of(info.value) == [
        f"m.csv: line {last + 1}, column charge_id: charge_id BX00003 appears twice in this file (first on line 8)",
        f"m.csv: line {last + 2}, column charge_id: charge_id BX00001 appears twice in this file (first on line 5)",
    ]


def test_duplicate_in_an_empty_table_fast_path_batch_two(conn: sqlite3.Connection,
                                                         dump: Callable[[], list[str]]) -> None:
    """The empty-table path inserts without lookups; the UNIQUE index catches the repeat in a later
    batch, which is then redone with lookups: one problem, correctly located, nothing written."""
    rows = ["client_id,name"] + [f"N{i:05d},X" for i in range(BIG)]
    rows.append("N00000,again")
    rows.append("N00001,again")
    before = dump()
    with pytest.raises(ProblemsError) as info:
        imp(conn, "clients", "\n".join(rows) + "\n", name="c.csv")
    assert problems_of(info.value) == [
        f"c.csv: line {BIG + 2}, column client_id: client_id N00000 appears twice in this file (first on line 2)",
        f"c.csv: line {BIG + 3}, column client_id: client_id N00001 appears twice in this file (first on line 3)",
    ]
    assert dump() == before
    # and the same file without the repeats goes in whole
    assert imp(conn, "clients", "\n".join(rows[:-2]) + "\n").inserted == BIG


# --- dry run, JSON, stdin, terminal-free output, files and ledgers that are not there --------------


def test_dry_run_writes_nothing_and_reports_the_same_counts(cli: Cli, conn: sqlite3.Connection, tmp_path: Path,
                                                            dump: Callable[[], list[str]]) -> None:
    load_samples(conn, ("clients", "events", "charges"))
    original = (SAMPLE / "payments.csv").read_text().splitlines()
    pending = next(line for line in original if ",pending," in line)
    imp(conn, "payments", "\n".join([*original[:5], pending]) + "\n")  # 4 will be unchanged, 1 updated
    path = write(tmp_path, "p.csv", "\n".join(original).replace(pending, pending.replace(",pending,", ",ready,")))
    before = dump()
    dry = cli("import", "payments", str(path), "--dry-run", "--json")
    assert dry.exit_code == 0, dry.stderr
    assert dump() == before
    dry_summary = json.loads(dry.stdout)
    plain = cli("import", "payments", str(path), "--dry-run")
    assert "would import 20 new, 1 updated, 4 unchanged payments (dry run: nothing written)" in plain.stdout
    real = cli("import", "payments", str(path), "--json")
    assert real.exit_code == 0
    real_summary = json.loads(real.stdout)
    assert dry_summary == {**real_summary, "dry_run": True}
    assert (real_summary["inserted"], real_summary["updated"], real_summary["unchanged"]) == (20, 1, 4)
    assert dump() != before


def test_dry_run_of_a_bad_file_is_refused_too(cli: Cli, tmp_path: Path, dump: Callable[[], list[str]]) -> None:
    path = write(tmp_path, "c.csv", ["client_id,name", "C1,"])
    before = dump()
    result = cli("import", "clients", str(path), "--dry-run")
    assert result.exit_code == 3 and "line 2, column name: is required" in result.stderr
    assert dump() == before


def test_json_summary_fields(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", ["client_id,name,extra", "C1,Ann,x", "C2,Bo,y"])
    result = cli("import", "clients", str(path), "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "kind": "clients", "file": str(path), "inserted": 2, "updated": 0, "unchanged": 0, "dry_run": False,
        "refused": False, "warnings": [f"{path}: ignoring unknown column extra"],
    }


def test_json_of_a_refused_file_locates_each_problem_on_stdout(cli: Cli, tmp_path: Path,
                                                               dump: Callable[[], list[str]]) -> None:
    path = write(tmp_path, "c.csv", ["client_id,name,responsible_party", "C1,Ann Lee,", ",Bo Diaz,", "C3,x", "C1,Cy Ng,"])
    before = dump()
    result = cli("import", "clients", str(path), "--json")
    assert result.exit_code == 3
    assert json.loads(result.stdout) == {
        "kind": "clients", "file": str(path), "dry_run": False, "refused": True,
        "error": f"{path}: 3 problems; nothing was imported", "problem_count": 3,
        "problems": [
            {"line": 3, "column": "client_id", "reason": "is required"},
            {"line": 4, "column": None, "reason": "has 2 fields but the header has 3"},
            {"line": 5, "column": "client_id", "reason": "client_id C1 appears twice in this file (first on line 2)"},
        ],
    }
    assert "Ann Lee" not in result.stdout and "Cy Ng" not in result.stdout  # ids, not patients
    assert f"{path}: line 3, column client_id: is required" in result.stderr  # the sentences stay
    assert dump() == before


def test_json_of_a_file_refused_whole_says_why(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", b"client_id,name\nC1,\"Ann\nC2,Bo\n")
    result = cli("import", "clients", str(path), "--dry-run", "--json")
    assert result.exit_code == 3
    refusal = json.loads(result.stdout)
    assert (refusal["refused"], refusal["dry_run"], refusal["problem_count"], refusal["problems"]) == (True, True, 0, [])
    assert refusal["error"].startswith(f"{path}: line 2: a quoted field that starts here is never closed")
    missing = cli("import", "clients", str(tmp_path / "nope.csv"), "--json")
    assert missing.exit_code == 3
    assert json.loads(missing.stdout)["error"] == f"file {tmp_path / 'nope.csv'} does not exist"


def test_json_of_an_import_that_finds_the_ledger_locked(cli: Cli, tmp_path: Path, ledger_path: Path) -> None:
    path = write(tmp_path, "c.csv", ["client_id,name", "C1,Ann"])
    blocker = sqlite3.connect(ledger_path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        busy = cli("import", "clients", str(path), "--json", env={"PAYALLOC_BUSY_TIMEOUT_MS": "0"})
    finally:
        blocker.close()
    assert busy.exit_code == 4
    assert json.loads(busy.stdout) == {
        "kind": "clients", "file": str(path), "dry_run": False, "refused": True,
        "error": "the ledger stayed locked by another process for 0 s; nothing was changed, try again",
        "problem_count": 0, "problems": [],
    }


def test_stdin(cli: Cli, ledger_path: Path) -> None:
    result = cli("import", "clients", "-", input=(SAMPLE / "clients.csv").read_text())
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "stdin: imported 12 new, 0 updated, 0 unchanged clients\n"
    again = cli("import", "clients", "-", "--json", input=(SAMPLE / "clients.csv").read_text())
    assert json.loads(again.stdout)["file"] == "stdin" and json.loads(again.stdout)["unchanged"] == 12
    bad = cli("import", "clients", "-", input="client_id,name\nC-1001,\n")
    assert bad.exit_code == 3 and "stdin: line 2, column name: is required" in bad.stderr


def test_no_progress_bar_or_ansi_off_terminal(cli: Cli, conn: sqlite3.Connection, tmp_path: Path) -> None:
    load_samples(conn, ("clients",))
    path = write(tmp_path, "big.csv", charges_file(BIG))
    result = cli("import", "charges", str(path))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{path}: imported {BIG} new, 0 updated, 0 unchanged charges\n"
    assert result.stderr == ""
    assert "\x1b" not in result.stdout + result.stderr


def test_missing_file(cli: Cli, tmp_path: Path, dump: Callable[[], list[str]]) -> None:
    before = dump()
    result = cli("import", "clients", str(tmp_path / "nope.csv"))
    assert result.exit_code == 3
    assert f"file {tmp_path / 'nope.csv'} does not exist" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert dump() == before


def test_a_file_that_is_a_symbolic_link_loop_is_not_said_to_be_missing(cli: Cli, tmp_path: Path) -> None:
    loop = tmp_path / "loop.csv"
    loop.symlink_to(tmp_path / "back.csv")
    (tmp_path / "back.csv").symlink_to(loop)
    for args in (["import", "clients", str(loop)], ["apply", "--file", str(loop)]):
        result = cli(*args)
        assert (result.exit_code, result.stderr) == (  # was "file ... does not exist"
            3, f"error: cannot read {loop}: Too many levels of symbolic links\n"), args


def test_missing_ledger_is_refused_and_not_created(tmp_path: Path) -> None:
    ledger = tmp_path / "typo.db"
    result = Cli(ledger)("import", "clients", str(SAMPLE / "clients.csv"))
    assert result.exit_code == 3
    assert str(ledger) in result.stderr
    assert not ledger.exists()
    assert list(tmp_path.iterdir()) == []


def test_unknown_kind_is_a_usage_error(cli: Cli) -> None:
    result = cli("import", "refunds", str(SAMPLE / "clients.csv"))
    assert result.exit_code == 2
    with pytest.raises(InputError, match="unknown import kind 'refunds'"):
        import_csv(sqlite3.connect(":memory:"), "refunds", io.BytesIO(b""), "x", now=NOW, staff="t")


# --- fast path == slow path -----------------------------------------------------------------------

_KEYS = st.sampled_from(["C-1", " C-1 ", "E-1", "", " ", "x" * 64, "y" * 65, "C\x1b1", "C\u202e1", "\u00a0C-2\u00a0",
                         "C\t3", "C 4"]) | st.text(max_size=70)
_DATES = st.sampled_from(["2026-01-31", " 2026-01-31", "2026-01-31 \t", "2026-02-30", "20260131", "", " ",
                          "2026-01-31\u00a0", "\u20032026-01-31", "2026-01-31\n", " " * 45 + "2026-01-01"]) \
    | st.text(alphabet="0123456789- ", max_size=12)
_AMOUNTS = st.sampled_from(["150.00", "$1,234.50", " 12.5 ", "12.5\u00a0", "\u00a012.5", "0", "-5", "1e3", "",
                            "12,50", " ", "1,000,000,000.00", "1000000000.01", " " * 45 + "1.00", "7\n", "0.00", "00.50",
                            "01.00", "0.05", "999999999.99", "1000000000.00"]) \
    | st.text(alphabet="0123456789,.$ -\u00a0", max_size=12)
_TEXTS = st.sampled_from(["Ann", "", " ", "x" * 64, "x" * 65, "x" * 200, "x" * 201, "y" * 4000, "y" * 4001,
                          "[/]", "a\x1b[2Jb", " padded "]) | st.text(max_size=20)


def _enum(*values: str) -> st.SearchStrategy[str]:
    variants = [*values, *(f" {v} " for v in values), *(v.upper() for v in values), "", " ", "other", "\u00a0" + values[0]]
    return st.sampled_from(variants) | st.text(max_size=8)


_CELLS: dict[str, st.SearchStrategy[str]] = {
    "client_id": _KEYS, "event_id": _KEYS, "charge_id": _KEYS, "payment_id": _KEYS,
    "scheduled_date": _DATES, "service_date": _DATES, "received_date": _DATES, "amount": _AMOUNTS,
    "payer": _enum("self_pay", "patient_resp", "insurance"), "apply_to": _enum("oldest", "specific", "event"),
    "method": _enum("cash", "check", "card", "eft", "other"),
}


def _status(kind: str) -> st.SearchStrategy[str]:
    return _enum("scheduled", "done") if kind == "events" else _enum("ready", "pending")


# Files of valid rows, each with at most a couple of hazards: one thing wrong (or unusual) is where a
# fast path that takes too much shows. References are to the ledgers of _BASES below.
_EVENT_OWNERS = {"E-1": "C-1", "E-2": "C-2"}  # and E-3, C-1's, deleted
_IN_LEDGER = {"clients": "C-1", "events": "E-1", "charges": "CH-1", "payments": "P-1"}  # in the "full" base
_GOOD: dict[str, st.SearchStrategy[str]] = {
    "client_id": st.sampled_from(["C-1", "C-2", "C-3"]),
    "event_id": st.sampled_from(["", "", "E-1", "E-2"]),
    "scheduled_date": st.sampled_from(["2026-01-31", "2026-02-01"]),
    "service_date": st.sampled_from(["2026-01-31", "2026-02-01"]),
    "received_date": st.sampled_from(["2026-01-31", "2026-02-01"]),
    "amount": st.sampled_from(["10.00", "$1,234.50", "7", "0.5"]),
    "payer": st.sampled_from(["self_pay", "patient_resp", "insurance"]),
    "method": st.sampled_from(["", "cash", "card"]),
}
_GOOD_TEXT = st.sampled_from(["", "Ann", "Bo", 'memo: "Oct, Nov"', "line1\nline2", "a\r\nb\rc"])
_HAZARDS = {
    "clients": ["an id twice", "an id in the ledger", "a hostile cell", "a short or empty line"],
    "events": ["an id twice", "an id in the ledger", "a hostile cell", "a short or empty line", "an unknown client"],
}
_HAZARDS["charges"] = _HAZARDS["payments"] = [*_HAZARDS["events"], "an unknown event", "another client's event",
                                             "a deleted event"]


@st.composite
def _good_row(draw: st.DrawFn, kind: str, columns: list[str], n: int) -> dict[str, str]:
    row = {c: draw(_GOOD.get(c, _GOOD_TEXT)) for c in columns}
    row[LAYOUTS[kind].required[0]] = f"{kind[:2].upper()}-{n}"  # new to every ledger of _BASES
    if kind == "clients":
        row["name"] = draw(st.sampled_from(["Ann", "Bo"]))
    if "status" in row:
        row["status"] = draw(st.sampled_from(["", "scheduled", "done"] if kind == "events" else ["", "ready", "pending"]))
    if kind in ("charges", "payments"):
        row["client_id"] = _EVENT_OWNERS.get(row.get("event_id", ""), row["client_id"])
    if kind == "payments":
        row["apply_to"] = "event" if row.get("event_id") else draw(st.sampled_from(["oldest", "specific"]))
    return row


def _event(row: dict[str, str], event: str, client: str) -> None:
    row["event_id"], row["client_id"] = event, client
    if "apply_to" in row:
        row["apply_to"] = "event"


@st.composite
def _records(draw: st.DrawFn, kind: str, hazards: st.SearchStrategy[list[str]]) -> tuple[list[str], list[list[str]]]:
    """(header, records): valid rows, then these hazards."""
    layout = LAYOUTS[kind]
    columns = draw(st.permutations([*layout.required, *(c for c in layout.optional if draw(st.booleans()))]))
    rows = [draw(_good_row(kind, columns, n)) for n in range(1, draw(st.integers(1, 7)) + 1)]
    short: list[list[str]] = []
    for hazard in draw(hazards):
        event(hazard)
        row = draw(st.sampled_from(rows))
        key = layout.required[0]
        if hazard == "an id twice":
            row[key] = draw(st.sampled_from(rows))[key]
        elif hazard == "an id in the ledger":
            row[key] = _IN_LEDGER[kind]
        elif hazard == "a hostile cell":
            column = draw(st.sampled_from(columns))
            row[column] = draw(_status(kind) if column == "status" else _CELLS.get(column, _TEXTS))
        elif hazard == "a short or empty line":
            short.append(draw(st.sampled_from([[], ["extra"], ["", ""]])))
        elif hazard == "an unknown client":
            row["client_id"] = "C-404"
        elif "event_id" in columns:
            _event(row, *{"an unknown event": ("E-404", "C-1"), "another client's event": ("E-1", "C-2"),
                          "a deleted event": ("E-3", "C-1")}[hazard])
    records = [[row[c] for c in columns] for row in rows]
    for cells in short:
        records.insert(draw(st.integers(0, len(records))), cells)
    return columns, records


@st.composite
def csv_files(draw: st.DrawFn, kinds: tuple[str, ...] = KIND_ORDER) -> tuple[str, str]:
    """(kind, file text); multi-line cells, CRLF or LF."""
    kind = draw(st.sampled_from(kinds))
    columns, records = draw(_records(kind, st.lists(st.sampled_from(_HAZARDS[kind]), max_size=2)))
    out = io.StringIO()
    csv.writer(out, lineterminator=draw(st.sampled_from(["\n", "\r\n"]))).writerows([columns, *records])
    assume("\x00" not in out.getvalue())  # a binary file: refused whole, before any row is read
    return kind, out.getvalue()


def _read(kind: str, text: str, size: int, *, fast: bool = True) -> list[Batch | CleanBatch]:
    csv_file = CsvFile(io.BytesIO(text.encode()), "f.csv", kind)
    with contextlib.nullcontext() if fast else mock.patch.object(CsvFile, "_clean", return_value=None):
        return list(csv_file.batches(size))


def _batches(kind: str, text: str, *, fast: bool, size: int = 3) -> list[Batch]:
    """The file's batches; a clean one as the importer sees it when it must name a row."""
    return [b.as_rows() if isinstance(b, CleanBatch) else b for b in _read(kind, text, size, fast=fast)]


@given(csv_files())
def test_fast_path_batches_exactly_as_the_slow_path(case: tuple[str, str]) -> None:
    """Same batches, rows (values and lines) and problems, whether the fast path takes a batch or not."""
    kind, text = case
    taken = sum(isinstance(b, CleanBatch) for b in _read(kind, text, 3))
    event(f"the fast path took {'some' if taken else 'no'} batch")
    assert _batches(kind, text, fast=True) == _batches(kind, text, fast=False)


@st.composite
def batches_of_rows(draw: st.DrawFn) -> tuple[str, dict[str, int], list[list[str]]]:
    kind = draw(st.sampled_from(KIND_ORDER))
    columns, records = draw(_records(kind, st.lists(st.just("a hostile cell"), max_size=3)))
    return kind, {c: i for i, c in enumerate(columns)}, records


@given(batches_of_rows())
def test_fast_path_takes_a_batch_only_if_every_row_is_valid(case: tuple[str, dict[str, int], list[list[str]]]) -> None:
    kind, index, records = case
    slow = []
    for cells in records:
        row = _Row(cells, index)
        slow.append((FIELDS[kind](row), row.problems))
    try:
        columns = FIELDS[kind](_Columns(records, index, len(index)))
    except _Slow:
        event("refused")
        return
    event("taken")
    assert all(not problems for _, problems in slow), f"fast path took a batch the slow path refuses: {records!r}"
    assert [tuple(r) for r in zip(*columns, strict=True)] == [tuple(r) for r, _ in slow]


@pytest.mark.parametrize("kind", KIND_ORDER)
def test_fast_path_takes_the_ordinary_rows(kind: str) -> None:
    text = (SAMPLE / f"{kind}.csv").read_text()
    batches = _read(kind, text, 7)
    assert batches and all(isinstance(b, CleanBatch) for b in batches)
    assert [b.as_rows() for b in batches] == _batches(kind, text, fast=False, size=7)


@pytest.mark.parametrize(
    ("kind", "cells"),
    [
        ("charges", ["X", "C", "2026-01-01", "12.5\u00a0", "self_pay"]),
        ("charges", ["X", "C", "2026-01-01\u00a0", "12.50", "self_pay"]),
        ("charges", ["X", "C", "2026-01-01", "1e3", "self_pay"]),
        ("charges", ["X", "C", "2026-01-01", "1.00", "Self_Pay"]),
        ("charges", ["X", "C" * 65, "2026-01-01", "1.00", "self_pay"]),
        ("events", ["E", "C", "2026-01-01", "DONE"]),
        ("payments", ["P", "C", "2026-01-01", "1.00", "event", ""]),
        ("payments", ["P", "C", "2026-01-01", "1.00", "oldest", "E"]),
        ("clients", ["C\x1b", "Ann"]),
        ("clients", ["C", " "]),
        ("clients", ["C", "N" * 201]),
    ],
)
def test_both_paths_refuse(kind: str, cells: list[str]) -> None:
    columns = list(LAYOUTS[kind].columns)[: len(cells)]
    good = {"clients": ["C-9", "Ann"], "events": ["E-9", "C-9", "2026-01-02", "done"],
            "charges": ["X-9", "C-9", "2026-01-02", "1.00", "self_pay"],
            "payments": ["P-9", "C-9", "2026-01-02", "1.00", "oldest", ""]}[kind][: len(cells)]
    text = "\n".join(",".join(r) for r in (columns, good, cells, good)) + "\n"
    slow = _batches(kind, text, fast=False, size=10)
    assert len(slow) == 1 and len(slow[0].rows) == 2 and slow[0].problems
    assert _batches(kind, text, fast=True, size=10) == slow


@pytest.mark.parametrize(("kind", "cells", "value"), [
    ("events", ["E", "C", "2026-01-01", " done "], "done"),
    ("events", ["E", "C", "2026-01-01", " "], "scheduled"),
    ("events", ["E", "C", "2026-01-01", "\u00a0"], "scheduled"),
    ("payments", ["P", "C", "2026-01-01", "1.00", "oldest", " ", " cash "], "cash"),
    ("payments", ["P", "C", "2026-01-01", "1.00", " event ", " E-1", "\t"], None),
    ("charges", [" X ", "C\u2003", " 2026-01-01", "1.00 ", "insurance"], "X"),
    ("clients", ["C", " Ann\n"], "Ann"),
])
def test_cells_valid_once_trimmed_give_the_same_row_either_way(kind: str, cells: list[str], value: str | None) -> None:
    columns = list(LAYOUTS[kind].columns)[: len(cells)]
    text = "\n".join(",".join(f'"{c}"' for c in r) for r in (columns, cells)) + "\n"
    [batch] = _batches(kind, text, fast=True)
    assert not batch.problems and value in batch.rows[0][1]
    assert [batch] == _batches(kind, text, fast=False)


def test_batches_end_where_they_always_did() -> None:
    """At `size` rows, or after a refused row once rows and problems reach `size`: problem messages
    depend on it ("first on line N" is said of an id repeated in the same batch)."""
    rows = ["X1,C,2026-01-01,1.00,self_pay", "X2,C,2026-01-01,1.00,self_pay", "X3,C,2026-01-01,1.00,self_pay"]
    bad = "X0,C,2026-01-01,-1,self_pay"
    text = "\n".join(["charge_id,client_id,service_date,amount,payer", bad, *rows, bad, bad, bad, *rows]) + "\n"
    batches = _batches("charges", text, fast=True)
    assert [(len(b.rows), len(b.problems)) for b in batches] == [(3, 1), (0, 3), (3, 0)]
    assert batches == _batches("charges", text, fast=False)


def test_fast_path_values_are_exact_when_the_caches_are_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """The date and amount caches are bounded: filling them mid-batch changes no value."""
    monkeypatch.setattr("payalloc.csv_import._CACHE_LIMIT", 2)
    rows = [f"X{i},C-1,2026-01-{1 + i % 5:02d},{i % 7 + 1}.25,self_pay" for i in range(30)]
    text = "charge_id,client_id,service_date,amount,payer\n" + "\n".join(rows) + "\n"
    fast = _read("charges", text, 10)
    assert all(isinstance(b, CleanBatch) for b in fast)
    assert [b.as_rows() for b in fast] == _batches("charges", text, fast=False, size=10)


@pytest.mark.parametrize(("amounts", "cents"), [
    (["293.86", "0.05", "999999999.99"], [29386, 5, 99999999999]),  # the usual column, read at once
    (["293.86", "7", "$1,234.50"], [29386, 700, 123450]),  # other forms: parsed cell by cell
])
def test_fast_path_amounts_are_the_cents_parse_cents_gives(amounts: list[str], cents: list[int]) -> None:
    text = "charge_id,client_id,service_date,amount,payer\n" + "".join(
        f"X{i},C-1,2026-01-31,\"{amount}\",self_pay\n" for i, amount in enumerate(amounts))
    (batch,) = _read("charges", text, 10)
    assert isinstance(batch, CleanBatch)
    assert [row.amount_cents for _, row in batch.as_rows().rows] == cents


@pytest.mark.parametrize("bad", ["0.00", "00.50", "01.00", "1000000000.01"])
def test_a_bad_amount_among_plain_ones_goes_row_by_row(bad: str) -> None:
    """A zero, a leading zero or too large an amount looks plain; it is still refused, on its line."""
    text = "charge_id,client_id,service_date,amount,payer\n" + "".join(
        f"X{i},C-1,2026-01-31,{amount},self_pay\n" for i, amount in enumerate(["10.00", bad, "12.34"]))
    (batch,) = _read("charges", text, 10)
    assert not isinstance(batch, CleanBatch)
    assert [p.where for p in batch.problems] == ["f.csv: line 3, column amount"]


# Raw CSV text, hostile to line counting: quoted cells with CR, LF and CRLF, empty lines, lone CRs.
_RAW_CSV = st.lists(st.sampled_from(["a", ",", '"', "\r", "\n", "\r\n", '"x\r\ny"', '"\n"', '"\r"', "\n\n"]),
                    max_size=30).map("".join)


@given(_RAW_CSV)
def test_line_numbers_are_counted_as_the_csv_reader_counts_them(text: str) -> None:
    """Each record's start line, computed from its cells (numbered), is the reader's own count."""
    reader = csv.reader(io.TextIOWrapper(io.BytesIO(text.encode()), newline=""), strict=True)
    expected: list[tuple[int, list[str]]] = []
    with contextlib.suppress(csv.Error):
        while True:
            start = reader.line_num + 1
            cells = next(reader, None)
            if cells is None:
                break
            expected.append((start, cells))
    assert list(numbered(1, [cells for _, cells in expected])) == expected


def test_an_unclosed_quote_after_multi_line_cells_is_located(conn: sqlite3.Connection) -> None:
    """Records are read many at a time; the line of the one that fails is still exact."""
    text = ("payment_id,client_id,received_date,amount,apply_to,note\n"
            'Q1,C-1001,2026-01-01,5.00,oldest,"two\r\nlines"\n'
            'Q2,C-1001,2026-01-01,5.00,oldest,"and\nthree\rlines"\n'
            'Q3,C-1001,2026-01-01,5.00,oldest,"never closed\n'
            "Q4,C-1001,2026-01-01,5.00,oldest,\n")
    with pytest.raises(InputError, match=r"p\.csv: line 7: a quoted field that starts here is never closed"):
        imp(conn, "payments", text, name="p.csv")


def test_a_cell_over_the_csv_field_limit_is_said_so_at_its_line(conn: sqlite3.Connection) -> None:
    """csv's field limit (131,072) bounds memory when a quote never closes; the file is not
    "malformed": the message says a cell is too long, on the line its record starts."""
    sentence = ("a cell is longer than 131,072 characters (no column may hold more than 4,000;"
                " a quote never closed?)")
    with pytest.raises(InputError) as info:
        imp(conn, "clients", "client_id,name\nC1,Ann\nC2," + "N" * 300_000 + "\nC3,Bo\n", name="c.csv")
    assert str(info.value) == f"c.csv: line 3: {sentence}"
    with pytest.raises(InputError) as info:  # the quote opens on line 3; the limit is reached lines later
        imp(conn, "clients", 'client_id,name\nC1,"Ann\nLee"\nC2,"open\n' + ("x" * 100 + "\n") * 2000, name="c.csv")
    assert str(info.value) == f"c.csv: line 4: {sentence}"
    assert conn.execute("SELECT count(*) FROM clients").fetchone() == (0,)


# The importer: a clean batch is inserted at once, unless a row needs naming (duplicate id, unknown
# or other client's reference, deleted event, id already in the ledger): then row by row.

_BASES = {  # kind -> CSV rows, imported in this order into a ledger
    "empty": {},
    "references": {"clients": ["client_id,name", "C-1,Ann", "C-2,Bo", "C-3,Cy"],
                   "events": ["event_id,client_id,scheduled_date,status", "E-1,C-1,2026-01-31,scheduled",
                              "E-2,C-2,2026-01-31,done", "E-3,C-1,2026-01-31,scheduled"]},
}
_BASES["clients"] = {"clients": _BASES["references"]["clients"]}
_BASES["full"] = {**_BASES["references"],
                  "charges": ["charge_id,client_id,service_date,amount,payer", "CH-1,C-1,2026-01-31,10.00,self_pay"],
                  "payments": ["payment_id,client_id,received_date,amount,apply_to,status",
                               "P-1,C-1,2026-01-31,10.00,oldest,pending"]}


@pytest.fixture(scope="module")
def base_ledgers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    paths = {}
    for name, files in _BASES.items():
        paths[name] = tmp_path_factory.mktemp("base") / "ledger.db"
        init_ledger(paths[name])
        conn = open_ledger(paths[name])
        for kind, lines in files.items():
            imp(conn, kind, "\n".join(lines) + "\n")
        with write_txn(conn):  # a clerk deleted this one: new payments may not name it
            conn.execute("UPDATE events SET status = 'deleted' WHERE event_key = 'E-3'")
        conn.close()
    return paths


def _outcome(conn: sqlite3.Connection, kind: str, text: str) -> tuple[Any, ...]:
    try:
        summary = imp(conn, kind, text)
    except ProblemsError as error:
        return "refused", problems_of(error), error.total
    return "imported", summary.as_dict()


@st.composite
def imports(draw: st.DrawFn) -> tuple[str, str, str]:
    """(base ledger, kind, file text); with and without rows of the kind in the ledger."""
    kind = draw(st.sampled_from(KIND_ORDER))
    bases = {"clients": ["empty", "full"], "events": ["clients", "full"]}.get(kind, ["references", "full"])
    return draw(st.sampled_from(bases)), *draw(csv_files((kind,)))


def _import_twice(base: Path, tmp_path: Path, kind: str, text: str, *, fast: bool) -> tuple[Any, ...]:
    """Import a file in batches of 3, then the same file again: (outcomes, ledger, batches the
    importer took at once)."""
    clean = sum(isinstance(b, CleanBatch) for b in _read(kind, text, 3)) if fast else 0
    ledger = tmp_path / f"{'fast' if fast else 'slow'}.db"
    shutil.copyfile(base, ledger)
    conn = open_ledger(ledger)
    with contextlib.ExitStack() as patches:
        patches.enter_context(mock.patch.object(CsvFile, "batches", partialmethod(CsvFile.batches, 3)))
        if not fast:
            patches.enter_context(mock.patch.object(CsvFile, "_clean", return_value=None))
        row_by_row = patches.enter_context(
            mock.patch.object(CleanBatch, "as_rows", autospec=True, side_effect=CleanBatch.as_rows))
        outcomes = [_outcome(conn, kind, text)]
        at_once = clean - row_by_row.call_count
        outcomes.append(_outcome(conn, kind, text))
    dump = data_only(list(conn.iterdump()))
    conn.close()
    ledger.unlink()
    return outcomes, dump, at_once


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(imports())
def test_fast_path_imports_exactly_as_the_slow_path(base_ledgers: dict[str, Path], tmp_path: Path,
                                                     case: tuple[str, str, str]) -> None:
    """The same outcomes (summary, or every problem) and the same ledger, fast path or not."""
    base, kind, text = case
    fast_outcomes, fast_ledger, at_once = _import_twice(base_ledgers[base], tmp_path, kind, text, fast=True)
    event(f"{'some' if at_once else 'no'} batch inserted at once, then {fast_outcomes[0][0]}")
    slow_outcomes, slow_ledger, _ = _import_twice(base_ledgers[base], tmp_path, kind, text, fast=False)
    assert (fast_outcomes, fast_ledger) == (slow_outcomes, slow_ledger)


_FIVE_ROWS = {  # header, and a valid row n
    "clients": ("client_id,name", "CL-{n},Ann"),
    "events": ("event_id,client_id,scheduled_date", "EV-{n},C-1,2026-01-31"),
    "charges": ("charge_id,client_id,service_date,amount,payer,event_id", "CH-{n}0,C-1,2026-01-31,10.00,self_pay,"),
    "payments": ("payment_id,client_id,received_date,amount,apply_to,event_id", "P-{n}0,C-1,2026-01-31,10.00,oldest,"),
}


@pytest.mark.parametrize(("kind", "third_row"), [
    ("clients", "CL-1,Bo"), ("clients", "C-1,Ann"), ("clients", "C-1,Other"),
    ("events", "EV-1,C-1,2026-01-31"), ("events", "E-1,C-1,2026-01-31"), ("events", "E-1,C-2,2026-01-31"),
    ("events", "EV-3,C-404,2026-01-31"),
    ("charges", "CH-10,C-1,2026-01-31,10.00,self_pay,"), ("charges", "CH-1,C-1,2026-01-31,10.00,self_pay,"),
    ("charges", "CH-30,C-404,2026-01-31,10.00,self_pay,"), ("charges", "CH-30,C-1,2026-01-31,10.00,self_pay,E-404"),
    ("charges", "CH-30,C-2,2026-01-31,10.00,self_pay,E-1"), ("charges", "CH-30,C-1,2026-01-31,10.00,self_pay,E-3"),
    ("payments", "P-10,C-1,2026-01-31,10.00,oldest,"), ("payments", "P-1,C-1,2026-01-31,10.00,oldest,"),
    ("payments", "P-30,C-404,2026-01-31,10.00,oldest,"), ("payments", "P-30,C-1,2026-01-31,10.00,event,E-404"),
    ("payments", "P-30,C-2,2026-01-31,10.00,event,E-1"), ("payments", "P-30,C-1,2026-01-31,10.00,event,E-3"),
])
@pytest.mark.parametrize("base", ["empty table", "full"])
def test_what_only_the_importer_sees_is_named_as_row_by_row(base_ledgers: dict[str, Path], tmp_path: Path,
                                                            kind: str, third_row: str, base: str) -> None:
    """An id twice, an id in the ledger, an unknown or another client's reference, a deleted event,
    in the first batch of a clean file: the same outcome as row by row."""
    header, row = _FIVE_ROWS[kind]
    rows = [row.format(n=1), row.format(n=2), third_row, row.format(n=4), row.format(n=5)]
    text = "\n".join([header, *rows]) + "\n"
    if base == "empty table":
        base = {"clients": "empty", "events": "clients"}.get(kind, "references")
    fast_outcomes, fast_ledger, at_once = _import_twice(base_ledgers[base], tmp_path, kind, text, fast=True)
    assert at_once >= 1  # the second batch (rows 4 and 5) at least
    assert (fast_outcomes, fast_ledger) == _import_twice(base_ledgers[base], tmp_path, kind, text, fast=False)[:2]


def test_a_clean_file_never_goes_row_by_row(conn: sqlite3.Connection) -> None:
    with mock.patch.object(_Importer, "_check_rows", side_effect=AssertionError("row by row")):
        load_samples(conn)
    assert conn.execute("SELECT count(*) FROM payments").fetchone() == (SAMPLE_COUNTS["payments"],)


@pytest.mark.parametrize("enabled", [True, False])
def test_import_leaves_the_garbage_collector_as_it_was(conn: sqlite3.Connection, enabled: bool) -> None:
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        load_samples(conn, ("clients",))
        assert gc.isenabled() is enabled
        with pytest.raises(ProblemsError):
            imp(conn, "clients", "client_id,name\nC-1,\n")
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_messages_never_contain_markup_surprises(conn: sqlite3.Connection) -> None:
    """A bad cell is quoted in the message as text (at most 40 characters of an enum)."""
    with pytest.raises(ProblemsError) as info:
        imp(conn, "events", "event_id,client_id,scheduled_date,status\nE1,C1,2026-01-01," + "z" * 100 + "\n")
    text = "\n".join(problems_of(info.value))
    assert re.search(r"'z{40}' is not one of done, scheduled", text)


def test_line_numbers_count_physical_lines_after_a_multi_line_note(conn: sqlite3.Connection) -> None:
    load_samples(conn, ("clients",))
    text = ("payment_id,client_id,received_date,amount,apply_to,note\r\n"
            "Q1,C-1001,2026-01-01,5.00,oldest,\"first line\r\nsecond line\"\r\n"
            "Q2,C-1001,2026-01-01,5.001,oldest,\r\n")
    with pytest.raises(ProblemsError) as info:
        imp(conn, "payments", text, name="p.csv")
    assert problems_of(info.value) == ["p.csv: line 4, column amount: '5.001' has more than 2 decimals: an amount is in whole cents, like 1,234.50"]
    assert imp(conn, "payments", text.replace("5.001", "5.01")).inserted == 2
    assert conn.execute("SELECT note FROM payments WHERE payment_key = 'Q1'").fetchone() == ("first line\r\nsecond line",)


def test_reimport_after_the_job_and_a_void_is_unchanged(cli: Cli, conn: sqlite3.Connection,
                                                        dump: Callable[[], list[str]]) -> None:
    """The job turns event payments into specific ones and a clerk voids a payment: the bank's
    export still says what was received, so re-importing it is not a conflict."""
    load_samples(conn)
    assert cli("run-job").exit_code == 0
    assert cli("payment", "void", "P-3003", "--reason", "NSF").exit_code == 0
    assert conn.execute("SELECT count(*) FROM payments WHERE apply_to <> entered_apply_to").fetchone()[0] > 0
    before = data_only(dump())
    for kind in KIND_ORDER:
        s = imp(conn, kind, (SAMPLE / f"{kind}.csv").read_bytes())
        assert (s.inserted, s.updated) == (0, 0) and s.unchanged == SAMPLE_COUNTS[kind]
    assert data_only(dump()) == before


def test_reimport_of_a_payment_as_entered_or_as_it_is_now_is_unchanged(
        cli: Cli, conn: sqlite3.Connection, dump: Callable[[], list[str]]) -> None:
    """After `payment mode`, an export of the payment as entered or as it is now is the same payment;
    a third apply-to is a conflict that names both."""
    load_samples(conn, ("clients", "events"))
    head = "payment_id,client_id,received_date,amount,apply_to,event_id\n"
    imp(conn, "payments", head + "Q1,C-1004,2026-01-01,5.00,specific,\n")
    assert cli("payment", "mode", "Q1", "oldest").exit_code == 0
    before = data_only(dump())
    for apply_to in ("specific", "oldest"):
        s = imp(conn, "payments", head + f"Q1,C-1004,2026-01-01,5.00,{apply_to},\n")
        assert (s.inserted, s.updated, s.unchanged) == (0, 0, 1), apply_to
    assert data_only(dump()) == before
    with pytest.raises(ProblemsError) as info:
        imp(conn, "payments", head + "Q1,C-1004,2026-01-01,5.00,event,E-501\n", name="p.csv")
    assert problems_of(info.value) == [
        "p.csv: line 2, column apply_to: payment_id Q1 is already in the ledger with a different apply_to"
        " (ledger oldest, entered as specific, file event); payments cannot be changed by import"]
    # An event payment made specific keeps its event in the ledger; the file may show it either way.
    imp(conn, "payments", head + "Q2,C-1004,2026-01-01,5.00,event,E-504\n")
    assert cli("payment", "mode", "Q2", "specific").exit_code == 0
    before = data_only(dump())
    for apply_to, event_key in (("event", "E-504"), ("specific", "")):
        s = imp(conn, "payments", head + f"Q2,C-1004,2026-01-01,5.00,{apply_to},{event_key}\n")
        assert (s.inserted, s.updated, s.unchanged) == (0, 0, 1), apply_to
    assert data_only(dump()) == before
    with pytest.raises(ProblemsError):  # another event is another payment
        imp(conn, "payments", head + "Q2,C-1004,2026-01-01,5.00,event,E-501\n")


@pytest.mark.parametrize("kind", ["charges", "payments"])
def test_an_amount_cell_holding_a_line_break_is_refused_and_shifts_no_amount(
        conn: sqlite3.Connection, dump: Callable[[], list[str]], kind: str) -> None:
    """The fast path joins a column's cells with line breaks: a quoted amount "5.00<LF>7.00" must not
    read as two amounts and give the next row the second (a re-import that appends rows goes
    through CleanBatch.as_rows(), which would pair every later row with its predecessor's amount)."""
    add_client(conn, "C1")
    if kind == "charges":
        head, row = "charge_id,client_id,service_date,amount,payer\n", "{},C1,2026-01-0{},{},self_pay\n"
    else:
        head, row = "payment_id,client_id,received_date,amount,apply_to\n", "{},C1,2026-01-0{},{},oldest\n"
    imp(conn, kind, head + row.format("X1", 1, "10.00"))
    before = dump()
    text = head + row.format("X1", 1, "10.00") + row.format("X2", 2, '"5.00\n7.00"') + row.format("X3", 3, "30.00")
    with pytest.raises(ProblemsError) as refused:
        imp(conn, kind, text)
    assert [p.where for p in refused.value.problems] == ["in.csv: line 3, column amount"]
    assert dump() == before


@pytest.mark.parametrize("column", ["charge_id", "client_id"])
def test_an_id_cell_holding_a_line_break_is_refused(
        conn: sqlite3.Connection, dump: Callable[[], list[str]], column: str) -> None:
    """Ids are printable characters only (spec "Money, dates, ids"), whichever path reads them."""
    add_client(conn, "C1")
    cells = {"charge_id": "X2", "client_id": "C1", column: '"A\nB"'}
    text = ("charge_id,client_id,service_date,amount,payer\nX1,C1,2026-01-01,10.00,self_pay\n"
            f"{cells['charge_id']},{cells['client_id']},2026-01-02,20.00,self_pay\n")
    before = dump()
    with pytest.raises(ProblemsError) as refused:
        imp(conn, "charges", text)
    assert [p.where for p in refused.value.problems] == [f"in.csv: line 3, column {column}"]
    assert dump() == before


def test_a_method_cell_too_long_is_one_problem_not_two() -> None:
    index = {c: i for i, c in enumerate(LAYOUTS["payments"].columns)}
    cells = [""] * len(index)
    cells[index["payment_id"]], cells[index["client_id"]], cells[index["received_date"]] = "P1", "C1", "2026-01-02"
    cells[index["amount"]], cells[index["apply_to"]], cells[index["method"]] = "1.00", "oldest", "x" * 5000
    row = _Row(cells, index)
    FIELDS["payments"](row)
    assert [column for column, _ in row.problems] == ["method"]  # was "is longer than" twice
    assert "longer than" in row.problems[0][1]
