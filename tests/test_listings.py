"""`client list`, `payment list`, `remittances list`: filters, the spec's JSON field names, amounts as
"1234.50" strings, CSV with the same fields, unknown ids refused (exit 3) naming the id."""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from payalloc.ledger.connection import init_ledger
from tests.conftest import SAMPLE, Cli, fits, whole
from tests.test_import import load_samples

AMOUNT = re.compile(r"[0-9]+\.[0-9]{2}", re.ASCII)
UTC = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
PAYMENT_FIELDS = {"payment_id", "client_id", "received_date", "amount", "unapplied", "apply_to", "status"}
REMITTANCE_FIELDS = {"id", "payment_id", "charge_id", "client_id", "amount", "status", "source", "staff", "created_at"}


def js(cli: Cli, *args: str) -> Any:
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def sample_csv(kind: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((SAMPLE / f"{kind}.csv").read_text(), newline="")))


def cents(text: str) -> int:
    assert AMOUNT.fullmatch(text), text
    whole, frac = text.split(".")
    return int(whole) * 100 + int(frac)


@pytest.fixture
def ledger(conn: sqlite3.Connection) -> sqlite3.Connection:
    load_samples(conn)
    return conn


# --- client list ----------------------------------------------------------------------------------


def test_client_list(cli: Cli, ledger: sqlite3.Connection) -> None:
    rows = js(cli, "client", "list")
    expected = sorted(sample_csv("clients"), key=lambda r: r["client_id"])
    assert [r["client_id"] for r in rows] == [r["client_id"] for r in expected]
    assert set(rows[0]) == {"client_id", "name", "responsible_party", "payments", "charges"}
    by_id = {r["client_id"]: r for r in rows}
    assert by_id["C-1002"]["responsible_party"] == "Maria Diaz" and by_id["C-1001"]["responsible_party"] is None
    payments = sample_csv("payments")
    charges = sample_csv("charges")
    for r in rows:
        assert r["name"] == next(c["name"] for c in expected if c["client_id"] == r["client_id"])
        assert r["payments"] == sum(p["client_id"] == r["client_id"] for p in payments)
        assert r["charges"] == sum(c["client_id"] == r["client_id"] for c in charges)
    table = cli("client", "list")
    assert table.exit_code == 0 and "12 clients" in table.stdout and "Maria Diaz" in table.stdout
    header = next(line for line in table.stdout.splitlines() if "Client" in line)
    assert re.findall(r"[A-Z][a-z]+(?: party)?", header) == ["Client", "Name", "Responsible party", "Payments",
                                                             "Charges"]  # as every other table: Title case
    c1001 = next(line for line in table.stdout.splitlines() if "C-1001" in line)
    counts = [cell for cell in re.split(r"[│┃]", c1001) if cell.strip()][-2:]
    assert all(cell.endswith(" ") and cell.strip().isdigit() and cell.startswith("  ") for cell in counts)
    as_csv = list(csv.DictReader(io.StringIO(cli("client", "list", "--csv").stdout, newline="")))
    assert [dict(r) for r in as_csv] == [
        {k: "" if v is None else str(v) for k, v in r.items()} for r in rows]


def test_client_list_finds_a_client_by_part_of_a_name(cli: Cli, ledger: sqlite3.Connection) -> None:
    """A walk-in knows their name, not their id: --name matches the name or the responsible party,
    in any case; an empty search is refused rather than read as every client."""
    def found(text: str) -> list[str]:
        return [r["client_id"] for r in js(cli, "client", "list", "--name", text)]

    assert found("okaf") == ["C-1003"] and found("OKAFOR") == ["C-1003"]
    assert found("maria diaz") == ["C-1002"]  # the responsible party
    assert found("zzz") == []
    assert "no client's name contains that text" in cli("client", "list", "--name", "zzz").stderr
    ledger.execute("UPDATE clients SET name = 'Íñigo Ñúñez' WHERE client_key = 'C-1001'")
    assert found("Ñúñez") == ["C-1001"] and found("íñigo ñ") == ["C-1001"]  # not only ASCII letters fold
    blank = cli("client", "list", "--name", "  ")
    assert (blank.exit_code, blank.stderr) == (3, "error: --name is empty: give part of a name to look for\n")


def test_empty_listings(cli: Cli) -> None:
    for args in (("client", "list"), ("payment", "list"), ("remittances", "list")):
        result = cli(*args)
        assert result.exit_code == 0 and result.stdout == "" and result.stderr.strip() in (
            "no clients in the ledger", "no payments match", "no remittances match")
        assert js(cli, *args) == []
        assert cli(*args, "--csv").stdout.count("\n") == 1  # the header only


def test_json_and_csv_together_are_refused(cli: Cli, ledger: sqlite3.Connection) -> None:
    for args in (("client", "list"), ("payment", "list"), ("remittances", "list")):
        result = cli(*args, "--json", "--csv")
        assert result.exit_code == 2 and result.stderr == "error: choose one of --json and --csv\n"


# --- payment list ---------------------------------------------------------------------------------


def test_payment_list_fields_and_amounts(cli: Cli, ledger: sqlite3.Connection) -> None:
    rows = js(cli, "payment", "list")
    assert len(rows) == 25
    assert set(rows[0]) >= PAYMENT_FIELDS
    assert set(rows[0]) == PAYMENT_FIELDS | {"event_id", "method", "reference", "note", "payer_name"}
    by_id = {r["payment_id"]: r for r in rows}
    assert by_id["P-3002"]["amount"] == "200.00"  # "$200" in the file
    assert by_id["P-3022"]["amount"] == "1250.00" and by_id["P-3022"]["unapplied"] == "1250.00"
    assert by_id["P-3006"]["event_id"] == "E-501" and by_id["P-3006"]["apply_to"] == "event"
    for r in rows:
        assert isinstance(r["amount"], str) and isinstance(r["unapplied"], str)
        assert AMOUNT.fullmatch(r["amount"]) and r["unapplied"] == r["amount"]
        assert r["status"] in ("ready", "pending", "void")
    assert [(r["received_date"]) for r in rows] == sorted(r["received_date"] for r in rows)
    table = cli("payment", "list")
    assert "1,250.00" in table.stdout and "25 payments" in table.stdout


def test_payment_list_filters(cli: Cli, ledger: sqlite3.Connection) -> None:
    sample = sample_csv("payments")

    def ids(*args: str) -> list[str]:
        return sorted(r["payment_id"] for r in js(cli, "payment", "list", *args))

    assert ids("--client", "C-1001") == sorted(p["payment_id"] for p in sample if p["client_id"] == "C-1001")
    assert ids("--status", "pending") == sorted(p["payment_id"] for p in sample if p["status"] == "pending")
    assert ids("--status", "ready") == sorted(p["payment_id"] for p in sample if p["status"] != "pending")
    assert ids("--apply-to", "event") == sorted(p["payment_id"] for p in sample if p["apply_to"] == "event")
    assert ids("--client", "C-1012", "--apply-to", "specific", "--status", "pending") == ["P-3024"]
    assert ids("--client", "C-1012", "--apply-to", "oldest") == []
    assert ids("--status", "void") == []
    cli("payment", "void", "P-3001", "--reason", "check returned NSF")
    assert ids("--status", "void") == ["P-3001"]


def test_payment_list_bad_filters(cli: Cli, ledger: sqlite3.Connection) -> None:
    unknown = cli("payment", "list", "--client", "C-9999")
    assert unknown.exit_code == 3 and "client C-9999 is not in the ledger" in unknown.stderr
    assert unknown.stdout == ""
    bad = cli("payment", "list", "--status", "cleared")
    assert bad.exit_code == 2
    bad = cli("payment", "list", "--apply-to", "newest")
    assert bad.exit_code == 2


# --- remittances list -----------------------------------------------------------------------------


def test_remittances_from_the_job_and_by_hand(cli: Cli, ledger: sqlite3.Connection) -> None:
    assert cli("run-job").exit_code == 0
    job = js(cli, "remittances", "list")
    assert job, "the sample ledger gives the job work"
    assert set(job[0]) >= REMITTANCE_FIELDS
    for r in job:
        assert r["source"] == "job" and r["staff"] is None and r["status"] == "ready"
        assert isinstance(r["id"], int) and UTC.fullmatch(r["created_at"])
        assert isinstance(r["amount"], str) and cents(r["amount"]) > 0
    applied = cli("apply", "P-3004", "CH-2013=60.00")
    assert applied.exit_code == 0, applied.stderr
    rows = js(cli, "remittances", "list", "--payment", "P-3004")
    assert len(rows) == 1
    manual = rows[0]
    assert {k: manual[k] for k in REMITTANCE_FIELDS - {"id", "created_at"}} == {
        "payment_id": "P-3004", "charge_id": "CH-2013", "client_id": "C-1003", "amount": "60.00",
        "status": "ready", "source": "manual", "staff": "clerk1"}
    assert manual["id"] == max(r["id"] for r in job) + 1
    # the unapplied amounts of payment list agree with the remittances
    payments = {p["payment_id"]: p for p in js(cli, "payment", "list")}
    everything = js(cli, "remittances", "list")
    for pid, p in payments.items():
        used = sum(cents(r["amount"]) for r in everything if r["payment_id"] == pid and r["status"] != "reversed")
        assert cents(p["unapplied"]) == cents(p["amount"]) - used, pid
    assert payments["P-3004"]["unapplied"] == "0.00"


def test_a_payment_and_a_remittance_read_the_same_in_every_command(cli: Cli, ledger: sqlite3.Connection) -> None:
    """The listings build their JSON in SQL, client show and payment show from rows: a script that
    reads a remittance from one must find it the same in the others (reversed and replaced too)."""
    assert cli("run-job").exit_code == 0
    assert cli("apply", "P-3004", "CH-2013=60.00").exit_code == 0
    rid = js(cli, "remittances", "list", "--payment", "P-3004")[0]["id"]
    assert cli("unapply", str(rid), "--reason", "wrong charge", "--amount", "20.00").exit_code == 0
    listed = {r["id"]: r for r in js(cli, "remittances", "list")}
    payments = {p["payment_id"]: p for p in js(cli, "payment", "list")}
    assert {listed[rid]["status"], listed[rid + 1]["replaces_id"]} == {"reversed", rid}
    for client in {p["client_id"] for p in payments.values()}:
        shown = js(cli, "client", "show", client)
        for r in shown["remittances"]:
            assert r == listed[r["id"]]
        for p in shown["payments"]:
            assert p.items() >= payments[p["payment_id"]].items(), p["payment_id"]
    for pid, p in payments.items():
        detail = js(cli, "payment", "show", pid)
        assert {k: v for k, v in detail.items() if k != "remittances"}.items() >= p.items()
        assert [r["id"] for r in detail["remittances"]] == [i for i, r in listed.items() if r["payment_id"] == pid]
        for r in detail["remittances"]:  # and where it came from, in words ("job run 1 (oldest)")
            assert r.items() >= listed[r["id"]].items()


def test_remittances_filters(cli: Cli, ledger: sqlite3.Connection) -> None:
    cli("run-job")
    cli("apply", "P-3005", "CH-2014=120.00", "CH-2015=100.00")
    everything = js(cli, "remittances", "list")
    for client in ("C-1001", "C-1003", "C-1012"):
        rows = js(cli, "remittances", "list", "--client", client)
        assert rows == [r for r in everything if r["client_id"] == client]
    assert [r["charge_id"] for r in js(cli, "remittances", "list", "--payment", "P-3005")] == ["CH-2014", "CH-2015"]
    target = next(r for r in everything if r["payment_id"] == "P-3005" and r["charge_id"] == "CH-2015")
    undone = cli("unapply", str(target["id"]), "--reason", "wrong session")
    assert undone.exit_code == 0, undone.stderr
    reversed_ = js(cli, "remittances", "list", "--status", "reversed")
    assert [r["id"] for r in reversed_] == [target["id"]]
    ready = js(cli, "remittances", "list", "--status", "ready", "--client", "C-1003")
    assert [r["charge_id"] for r in ready] == ["CH-2014"]
    assert js(cli, "remittances", "list", "--status", "posted") == []
    assert js(cli, "remittances", "list", "--client", "C-1002", "--payment", "P-3005") == []


def test_remittances_unknown_ids_and_bad_status(cli: Cli, ledger: sqlite3.Connection) -> None:
    for args, named in ((("--payment", "P-404"), "payment P-404 is not in the ledger"),
                        (("--client", "C-404"), "client C-404 is not in the ledger")):
        result = cli("remittances", "list", *args, "--json")
        assert result.exit_code == 3 and named in result.stderr and result.stdout == ""
    assert cli("remittances", "list", "--status", "done").exit_code == 2


@pytest.mark.parametrize("listing", [("payment", "list"), ("remittances", "list"), ("event", "list"), ("audit",)])
def test_an_empty_filter_is_refused_not_read_as_no_filter(cli: Cli, ledger: sqlite3.Connection,
                                                          listing: tuple[str, ...]) -> None:
    # `payalloc payment list --client "$ID" --json` with $ID unset listed every client's payments.
    result = cli(*listing, "--client", " ", "--json")
    assert (result.exit_code, result.stderr, result.stdout) == (3, "error: client_id is empty\n", "")
    # ... and a filter is trimmed as every id is (C-1003 was 'not in the ledger').
    assert {r["client_id"] for r in js(cli, *listing, "--client", " C-1003 ")} <= {"C-1003"}


def test_an_empty_payment_filter_is_refused_and_a_padded_one_trimmed(cli: Cli, ledger: sqlite3.Connection) -> None:
    cli("apply", "P-3004", "CH-2013=60.00")
    result = cli("remittances", "list", "--payment", "")
    assert (result.exit_code, result.stderr, result.stdout) == (3, "error: payment_id is empty\n", "")
    assert [r["charge_id"] for r in js(cli, "remittances", "list", "--payment", "P-3004 ")] == ["CH-2013"]


def test_remittances_csv_has_the_json_fields_and_numeric_amounts(cli: Cli, ledger: sqlite3.Connection) -> None:
    cli("run-job")
    cli("apply", "P-3004", "CH-2013=60.00")
    rows = js(cli, "remittances", "list")
    result = cli("remittances", "list", "--csv")
    assert result.exit_code == 0
    parsed = list(csv.reader(io.StringIO(result.stdout, newline="")))
    assert parsed[0] == list(rows[0])
    assert len(parsed) == len(rows) + 1
    for line, row in zip(parsed[1:], rows, strict=True):
        record = dict(zip(parsed[0], line, strict=True))
        assert record["amount"] == row["amount"] and AMOUNT.fullmatch(record["amount"])
        assert record["id"] == str(row["id"]) and record["staff"] == (row["staff"] or "")
    table = cli("remittances", "list")
    assert table.exit_code == 0 and f"{len(rows)} remittances" in table.stdout and "clerk1" in table.stdout


# --- narrow terminals ------------------------------------------------------------------------------


def as_table_money(value: str) -> str:
    from payalloc.money import format_cents

    return format_cents(cents(value))


@pytest.mark.parametrize("width", [80, 60])
def test_listing_tables_keep_every_id_date_and_amount_whole(cli: Cli, ledger: sqlite3.Connection, width: int) -> None:
    """A clerk on an 80-column terminal reads ids to type them into the next command: never "P-3…"."""
    assert cli("run-job", "-q").exit_code == 0
    generated = cli("payment", "record", "--client", "C-1003", "--amount", "1,234.50", "--date", "2026-11-20",
                    "--apply-to", "specific", "--reference", "a rather long bank reference")
    assert generated.exit_code == 0, generated.stderr
    assert cli("apply", generated.stdout.strip(), "CH-2013=187.00").exit_code == 0
    listings = {
        ("payment", "list"): ("payment_id", "client_id", "received_date", "amount", "unapplied", "event_id"),
        ("remittances", "list"): ("id", "payment_id", "charge_id", "client_id", "amount"),
        ("client", "list"): ("client_id",),
    }
    for args, keys in listings.items():
        rows = js(cli, *args)
        result = cli(*args, env={"COLUMNS": str(width)})
        assert result.exit_code == 0, result.stderr
        out = result.stdout
        assert fits(out, width), out
        for row in rows:
            for key in keys:
                value = row[key]
                if value is None:
                    continue
                shown = as_table_money(value) if key in ("amount", "unapplied") else str(value)
                assert whole(shown, out), (args, width, key, shown, out)
        # An optional column is whole, or left out and named as such: never cut.
        if args == ("remittances", "list"):
            assert "not shown at this width: Created (UTC); see --json" in out or all(
                whole(row["created_at"], out) for row in rows), out


def test_a_payment_list_on_80_columns_stays_a_table(cli: Cli, ledger: sqlite3.Connection) -> None:
    # One line per payment: the optional columns (Method, Reference) go before the table does.
    result = cli("payment", "list", env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    payments = len(js(cli, "payment", "list"))
    assert len(lines) == payments + 3  # title, header, rule, a line each
    assert lines[0].startswith(f"{payments} payments (not shown at this width: ")
    assert lines[1].split()[:4] == ["Payment", "Client", "Received", "Amount"]
    assert fits(result.stdout, 80)


def test_a_closed_pipe_is_not_an_error(ledger_path: Path) -> None:
    """`payalloc ... | head` ends quietly: no 'internal error', no traceback."""
    import subprocess
    import sys

    for kind in ("clients", "events", "charges", "payments"):
        subprocess.run([sys.executable, "-m", "payalloc", "--db", str(ledger_path), "import", kind,
                        str(SAMPLE / f"{kind}.csv")], check=True, capture_output=True)
    proc = subprocess.Popen([sys.executable, "-m", "payalloc", "--db", str(ledger_path), "payment", "list", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before payalloc writes
    stderr = proc.stderr.read().decode()
    assert proc.wait() == 0
    assert "internal error" not in stderr and "Traceback" not in stderr


def test_list_titles_say_one_in_the_singular(cli: Cli, ledger: sqlite3.Connection) -> None:
    one_payment = cli("payment", "list", "--client", "C-1009")  # the sample's only payment of C-1009
    assert one_payment.exit_code == 0, one_payment.stderr
    assert "1 payment " in one_payment.stdout and "1 payments" not in one_payment.stdout
    cli("run-job")
    one_remittance = cli("remittances", "list", "--payment", "P-3019")  # run-job: one charge
    assert one_remittance.exit_code == 0, one_remittance.stderr
    assert "1 remittance " in one_remittance.stdout and "1 remittances" not in one_remittance.stdout
    assert "12 clients" in cli("client", "list").stdout


@pytest.mark.parametrize("args, no_match", [
    (("client", "list"), None),
    (("payment", "list"), ("--status", "pending", "--client", "C-1001")),
    (("remittances", "list"), ("--status", "reversed", "--client", "C-1001")),
])
def test_a_csv_listing_has_one_header_whether_rows_match_or_not(cli: Cli, ledger: sqlite3.Connection,
                                                                tmp_path: Path, args: tuple[str, ...],
                                                                no_match: tuple[str, ...] | None) -> None:
    # A script appending each night's export, or reading columns by name, must see the same header.
    assert cli("run-job", "-q").exit_code == 0  # remittances to list
    full = cli(*args, "--csv").stdout.splitlines()
    assert len(full) > 1
    header = full[0].split(",")
    assert header == list(js(cli, *args)[0])  # the JSON fields, in the same order
    if no_match is None:  # no filter to match nothing: a ledger without clients
        init_ledger(tmp_path / "empty.db")
        empty = Cli(tmp_path / "empty.db")(*args, "--csv").stdout
    else:
        empty = cli(*args, *no_match, "--csv").stdout
    assert empty.splitlines() == [full[0]]


# --- long listings: a table shows the first rows, machines get them all ------------------------


def many_clients(cli: Cli, n: int) -> list[str]:
    keys = [f"C-{i:04d}" for i in range(n)]
    csv_text = "client_id,name\n" + "".join(f"{k},Client {i}\n" for i, k in enumerate(keys))
    assert cli("import", "clients", "-", input=csv_text).exit_code == 0
    return keys


def table_ids(stdout: str) -> list[str]:
    return re.findall(r"\bC-\d{4}\b", stdout)


def test_a_long_table_shows_its_first_rows_and_says_how_many_it_left_out(cli: Cli) -> None:
    from payalloc.cli.common import TABLE_ROWS

    keys = many_clients(cli, TABLE_ROWS + 30)
    table = cli("client", "list")
    assert table.exit_code == 0, table.stderr
    assert table_ids(table.stdout) == keys[:TABLE_ROWS]
    assert f"{TABLE_ROWS + 30} clients (the first {TABLE_ROWS}; --limit N shows more" in table.stdout
    everything = cli("client", "list", "--limit", "0")
    assert table_ids(everything.stdout) == keys and "(the first" not in everything.stdout
    assert f"{TABLE_ROWS + 30} clients" in everything.stdout
    assert table_ids(cli("client", "list", "--limit", "5").stdout) == keys[:5]
    # Not cut: the title is the count alone.
    assert "(the first" not in cli("client", "list", "--limit", str(TABLE_ROWS + 30)).stdout


def test_json_and_csv_list_every_row_unless_limit_is_given(cli: Cli) -> None:
    from payalloc.cli.common import TABLE_ROWS

    keys = many_clients(cli, TABLE_ROWS + 30)
    assert [r["client_id"] for r in js(cli, "client", "list")] == keys
    assert [r["client_id"] for r in js(cli, "client", "list", "--limit", "7")] == keys[:7]
    rows = list(csv.DictReader(io.StringIO(cli("client", "list", "--csv", "--limit", "7").stdout, newline="")))
    assert [r["client_id"] for r in rows] == keys[:7]


@pytest.mark.parametrize("bad", ["-1", "x", "1.5", "", "99999999999999999999"])
def test_a_bad_limit_is_a_usage_error(cli: Cli, ledger: sqlite3.Connection, bad: str) -> None:
    for args in (("client", "list"), ("payment", "list"), ("remittances", "list"), ("unallocated",),
                 ("event", "list"), ("audit",), ("gl", "export")):
        result = cli(*args, "--limit", bad)
        assert result.exit_code == 2 and "is not a number of rows" in result.stderr, (args, result.stderr)


def test_a_json_listing_is_an_array_of_one_object_per_line(cli: Cli, ledger: sqlite3.Connection) -> None:
    """Scripts may read it whole (json.loads) or line by line (grep, a streaming reader)."""
    cli("run-job", "-q")
    for args in (("client", "list"), ("payment", "list"), ("remittances", "list"), ("unallocated",),
                 ("event", "list"), ("audit",), ("jobs",)):
        stdout = cli(*args, "--json").stdout
        lines = stdout.splitlines()
        assert lines[0] == "[" and lines[-1] == "]" and stdout.endswith("]\n"), args
        objects = [json.loads(line.strip().removesuffix(",")) for line in lines[1:-1]]
        assert objects == json.loads(stdout) and objects, args
        assert all(line.endswith(",") for line in lines[1:-2]) and not lines[-2].endswith(","), args


def test_unallocated_cut_at_limit_keeps_the_totals_of_every_client(cli: Cli, ledger: sqlite3.Connection) -> None:
    every = js(cli, "unallocated")
    assert len(every) > 2
    assert js(cli, "unallocated", "--limit", "2") == every[:2]  # the most urgent first
    table = cli("unallocated", "--limit", "2")
    assert f"{len(every)} clients (the first 2; --limit N shows more" in table.stdout
    assert [line.split()[1] for line in table.stdout.splitlines() if re.match(r"\W+C-\d+", line)] == \
        [e["client_id"] for e in every[:2]]
    total = sum(cents(e["unallocated"]) for e in every)
    footer = next(line for line in table.stdout.splitlines() if "Total" in line)
    assert as_table_money(f"{total // 100}.{total % 100:02d}") in footer


def test_audit_cut_at_limit_shows_the_most_recent(cli: Cli, ledger: sqlite3.Connection) -> None:
    every = js(cli, "audit")
    assert len(every) > 2
    assert js(cli, "audit", "--limit", "2") == every[-2:]
    assert f"{len(every)} actions (the last 2;" in cli("audit", "--limit", "2").stdout


@pytest.mark.parametrize("args, noun", [(("payment", "list"), "payments"), (("remittances", "list"), "remittances"),
                                        (("gl", "export"), "lines")])
def test_a_chronological_listing_cut_at_limit_shows_the_most_recent(cli: Cli, ledger: sqlite3.Connection,
                                                                    args: tuple[str, ...], noun: str) -> None:
    cli("gl", "map", "unapplied_default", "2150")
    cli("gl", "map", "self_pay_ar", "1210")
    assert cli("run-job", "-q").exit_code == 0  # remittances, posted: journal lines
    every = js(cli, *args)
    assert len(every) > 3
    assert js(cli, *args, "--limit", "3") == every[-3:]
    key = next(iter(every[0]))  # the first field and column: payment_id, id, line_id
    rows = list(csv.DictReader(io.StringIO(cli(*args, "--csv", "--limit", "3").stdout, newline="")))
    assert [r[key] for r in rows] == [str(row[key]) for row in every[-3:]]
    table = cli(*args, "--limit", "3")
    assert f"{len(every)} {noun} (the last 3; --limit N shows more" in table.stdout
    first_cells = [line.split("│")[1].strip() for line in table.stdout.splitlines() if line.startswith("│")]
    assert first_cells == [str(row[key]) for row in every[-3:]]
