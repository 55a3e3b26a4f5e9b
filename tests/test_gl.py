"""GL mappings and the posted journal: gl map, gl show, gl export (with reversing lines)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sqlite3
from collections.abc import Callable

from payalloc.ledger.connection import write_txn
from payalloc.ledger.remittances import reverse_remittance
from tests.builders import add_charge, add_client, add_payment
from tests.conftest import Cli, fits, whole


def small_ledger(conn: sqlite3.Connection) -> None:
    add_client(conn, "C1")
    add_charge(conn, "CH1", "C1", "2026-01-05", 123450)
    add_payment(conn, "P1", "C1", "2026-01-10", 100000)


def test_map_validates_upserts_and_audits(cli: Cli, conn: sqlite3.Connection, dump: Callable[[], list[str]]) -> None:
    before = dump()
    bad = cli("gl", "map", "cash", "1000")
    assert bad.exit_code == 3 and "unapplied_default, self_pay_ar" in bad.stderr
    assert cli("gl", "map", "self_pay_ar", "").exit_code == 3
    assert dump() == before

    first = cli("gl", "map", "self_pay_ar", "1210")
    assert first.exit_code == 0 and "posting still needs: unapplied_default" in first.stderr
    second = cli("gl", "map", "self_pay_ar", "1215")
    assert second.exit_code == 0 and "(was 1210)" in second.stderr
    ready = cli("gl", "map", "unapplied_default", "2150")
    assert "posting is ready" in ready.stderr
    assert dict(conn.execute("SELECT key, account FROM gl_mappings").fetchall()) == {
        "self_pay_ar": "1215", "unapplied_default": "2150"
    }
    details = [json.loads(d) for (d,) in conn.execute("SELECT detail FROM audit WHERE action = 'gl_map' ORDER BY id")]
    assert details == [
        {"key": "self_pay_ar", "account": "1210", "previous": None},
        {"key": "self_pay_ar", "account": "1215", "previous": "1210"},
        {"key": "unapplied_default", "account": "2150", "previous": None},
    ]


def test_show_says_whether_posting_is_ready(cli: Cli, conn: sqlite3.Connection) -> None:
    small_ledger(conn)
    assert cli("run-job", "-q").exit_code == 0
    shown = json.loads(cli("gl", "show", "--json").stdout)
    assert shown["posting_ready"] is False and shown["missing_mappings"] == ["unapplied_default", "self_pay_ar"]
    assert shown["ready_remittances"] == 1 and shown["ready_amount"] == "1000.00"
    cli("gl", "map", "unapplied_default", "2150")
    cli("gl", "map", "self_pay_ar", "1210")
    assert cli("run-job", "-q").exit_code == 0
    shown = json.loads(cli("gl", "show", "--json").stdout)
    assert shown["posting_ready"] is True and shown["missing_mappings"] == []
    assert [(m["key"], m["account"], m["updated_by"]) for m in shown["mappings"]] == [
        ("unapplied_default", "2150", "clerk1"), ("self_pay_ar", "1210", "clerk1"),
    ]
    assert (shown["journal_lines"], shown["journal_debit"], shown["journal_credit"], shown["balanced"]) == (
        2, "1000.00", "1000.00", True,
    )
    table = cli("gl", "show")
    assert table.exit_code == 0 and "2150" in table.stdout and "1,000.00" in table.stdout
    as_csv = list(csv.DictReader(io.StringIO(cli("gl", "show", "--csv").stdout, newline="")))
    assert [dict(r) for r in as_csv] == [
        {k: str(m[k]) for k in ("key", "account", "updated_at", "updated_by")} for m in shown["mappings"]]
    assert cli("gl", "show", "--csv", "--json").exit_code == 2


def test_show_csv_lists_an_unmapped_key_with_a_blank_account(cli: Cli) -> None:
    rows = list(csv.reader(io.StringIO(cli("gl", "show", "--csv").stdout, newline="")))
    assert rows == [["key", "account", "updated_at", "updated_by"], ["unapplied_default", "", "", ""],
                    ["self_pay_ar", "", "", ""]]


def test_export_includes_reversing_lines_and_balances_to_zero(cli: Cli, conn: sqlite3.Connection) -> None:
    small_ledger(conn)
    cli("gl", "map", "unapplied_default", "=HYPERLINK(\"x\")")  # an account a spreadsheet would run
    cli("gl", "map", "self_pay_ar", "1210")
    assert cli("run-job", "-q").exit_code == 0  # posts today, by the real clock
    tomorrow = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()
    with write_txn(conn):
        reverse_remittance(conn, 1, staff="clerk1", reason="wrong client", now=f"{tomorrow}T10:00:00Z")

    lines = json.loads(cli("gl", "export", "--json").stdout)
    assert [(x["entry"], x["account"], x["debit"], x["credit"]) for x in lines] == [
        ("post", '=HYPERLINK("x")', "1000.00", "0.00"),
        ("post", "1210", "0.00", "1000.00"),
        ("reverse", '=HYPERLINK("x")', "0.00", "1000.00"),
        ("reverse", "1210", "1000.00", "0.00"),
    ]
    assert {(x["payment_id"], x["charge_id"], x["client_id"], x["remittance_id"]) for x in lines} == {
        ("P1", "CH1", "C1", 1)
    }
    total = sum(int(x["debit"].replace(".", "")) - int(x["credit"].replace(".", "")) for x in lines)
    assert total == 0
    assert [x["entry"] for x in json.loads(cli("gl", "export", "--since", tomorrow, "--json").stdout)] == [
        "reverse", "reverse",
    ]

    rows = list(csv.DictReader(io.StringIO(cli("gl", "export", "--csv").stdout)))
    assert list(rows[0]) == ["line_id", "batch_id", "batch_created_at", "entry", "remittance_id", "payment_id",
                             "charge_id", "client_id", "account", "debit", "credit"]
    assert rows[0]["account"] == "'=HYPERLINK(\"x\")" and rows[0]["debit"] == "1000.00"
    assert cli("gl", "export").exit_code == 0
    later = cli("gl", "export", "--since", "2099-01-01")  # a journal with lines, none of them since then
    assert (later.exit_code, later.stdout, later.stderr) == (0, "", "no journal lines in batches since 2099-01-01\n")
    bad = cli("gl", "export", "--since", "2026-13-01")
    assert bad.exit_code == 3 and "YYYY-MM-DD" in bad.stderr
    assert cli("gl", "export", "--json", "--csv").exit_code == 2


def test_export_to_a_file_is_owner_only_and_complete(cli: Cli, conn: sqlite3.Connection, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import stat

    small_ledger(conn)
    assert cli("gl", "map", "unapplied_default", "2150").exit_code == 0
    assert cli("gl", "map", "self_pay_ar", "1210").exit_code == 0
    assert cli("run-job", "-q").exit_code == 0
    exports = tmp_path / "exports"
    exports.mkdir()
    target = exports / "journal.csv"
    old = os.umask(0o022)
    try:
        result = cli("gl", "export", "--csv", "--output", str(target))
    finally:
        os.umask(old)
    assert result.exit_code == 0 and result.stdout == ""
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    written = target.read_bytes().decode()
    assert written.endswith("\r\n")  # RFC 4180 line ends, as on stdout
    assert written.replace("\r\n", "\n") == cli("gl", "export", "--csv").stdout.replace("\r\n", "\n")
    assert len(list(csv.reader(io.StringIO(target.read_text())))) > 1
    assert [p.name for p in exports.iterdir()] == ["journal.csv"]  # no temporary file left behind
    missing = cli("gl", "export", "--csv", "--output", str(tmp_path / "no" / "j.csv"))
    assert missing.exit_code == 3 and "does not exist" in missing.stderr


def test_export_output_needs_a_format_and_never_replaces_a_file_without_force(  # type: ignore[no-untyped-def]
        cli: Cli, conn: sqlite3.Connection, tmp_path) -> None:
    import stat

    small_ledger(conn)
    cli("gl", "map", "unapplied_default", "2150")
    cli("gl", "map", "self_pay_ar", "1210")
    assert cli("run-job", "-q").exit_code == 0
    exports = tmp_path / "exports"
    exports.mkdir()
    target = exports / "journal.csv"
    # Without --csv or --json the file would get a box-drawing table: a usage error, nothing written.
    for args in (("--output", str(target)), ("-o", str(target), "--force")):
        bare = cli("gl", "export", *args)
        assert (bare.exit_code, bare.stderr, bare.stdout) == (2, "error: --output needs --csv or --json\n", "")
    assert list(exports.iterdir()) == []

    assert cli("gl", "export", "--csv", "-o", str(target)).exit_code == 0
    first = target.read_text()
    again = cli("gl", "export", "--json", "-o", str(target))
    assert (again.exit_code, again.stderr) == (3, f"error: export file {target} already exists; use --force to replace it\n")
    assert target.read_text() == first  # kept as it was
    replaced = cli("gl", "export", "--json", "-o", str(target), "--force")
    assert replaced.exit_code == 0, replaced.stderr
    assert [line["entry"] for line in json.loads(target.read_text())] == ["post", "post"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in exports.iterdir()] == ["journal.csv"]  # no temporary file left behind


def test_export_table_keeps_accounts_ids_and_amounts_whole_on_a_narrow_terminal(
        cli: Cli, conn: sqlite3.Connection) -> None:
    add_client(conn, "C-20261120-long")
    add_charge(conn, "CH-20261120-0001", "C-20261120-long", "2026-01-05", 123456789)
    add_payment(conn, "P-20261120-3f9a1c", "C-20261120-long", "2026-01-10", 123456789)
    cli("gl", "map", "unapplied_default", "2150-unapplied-client-payments")
    cli("gl", "map", "self_pay_ar", "1210-self-pay-receivable")
    assert cli("run-job", "-q").exit_code == 0
    lines = json.loads(cli("gl", "export", "--json").stdout)
    assert len(lines) == 2
    for width in (80, 60):
        out = cli("gl", "export", env={"COLUMNS": str(width)}).stdout
        assert fits(out, width), out
        for line in lines:
            for key in ("line_id", "batch_id", "batch_created_at", "remittance_id", "payment_id", "charge_id",
                        "client_id", "account"):
                assert whole(str(line[key]), out), (key, out)
        assert whole("1,234,567.89", out) and whole("0.00", out), out


def test_an_export_file_that_appears_meanwhile_is_not_clobbered(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from payalloc.cli import output
    from payalloc.errors import InputError

    target = tmp_path / "journal.csv"
    with pytest.raises(InputError, match="appeared while exporting; use --force"), output.to_file(target):
        output.line("line_id,debit")
        target.write_text("someone else's file\n")  # e.g. a second export started at the same moment
    assert target.read_text() == "someone else's file\n"
    assert [p.name for p in tmp_path.iterdir()] == ["journal.csv"]


def test_the_two_mappings_cannot_name_one_account(cli: Cli, dump: Callable[[], list[str]]) -> None:
    # Every posting debits one and credits the other: one account for both would post nothing.
    assert cli("gl", "map", "self_pay_ar", "1210").exit_code == 0
    before = dump()
    same = cli("gl", "map", "unapplied_default", "1210")
    assert same.exit_code == 3
    assert same.stderr == ("error: account 1210 is already mapped to self_pay_ar; unapplied_default must be a"
                           " different account (posting debits one and credits the other)\n")
    assert dump() == before
    assert cli("gl", "map", "self_pay_ar", "1210").exit_code == 0  # mapping a key again to its own account


def test_remapping_after_postings_says_what_keeps_the_old_account(cli: Cli) -> None:
    from tests.conftest import SAMPLE

    for kind in ("clients", "events", "charges", "payments"):
        assert cli("import", kind, str(SAMPLE / f"{kind}.csv")).exit_code == 0
    assert cli("gl", "map", "self_pay_ar", "1210").exit_code == 0
    assert cli("gl", "map", "unapplied_default", "2150").exit_code == 0
    assert cli("run-job", "-q").exit_code == 0  # posts what it applied
    same = cli("gl", "map", "self_pay_ar", "1210")
    assert "(unchanged)" in same.stderr and "warning" not in same.stderr
    moved = cli("gl", "map", "self_pay_ar", "1215")
    assert "(was 1210)" in moved.stderr
    assert "journal lines already posted keep account 1210 (and so do their reversals); later postings use 1215" \
        in moved.stderr
