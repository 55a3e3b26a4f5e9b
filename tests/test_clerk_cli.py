"""The clerk's commands end to end, in-process: a morning at the terminal, and each refusal once."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.builders import add_charge, add_client, add_payment
from tests.conftest import Cli, fits, whole

Dump = Callable[[], list[str]]


@pytest.fixture
def seeded(conn: sqlite3.Connection, cli: Cli) -> Cli:
    add_client(conn, "C-1", "Ann [bold]Lee[/]")  # markup in a name must print as text
    add_client(conn, "C-2", "Bob")
    add_charge(conn, "X", "C-1", "2026-10-01", 18700)
    add_charge(conn, "Z", "C-1", "2026-10-02", 5000)
    add_charge(conn, "INS", "C-1", "2026-10-02", 9000, payer="insurance")
    add_charge(conn, "B", "C-2", "2026-10-02", 4000)
    return cli


def ok(result: Any) -> Any:
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


def refused(cli: Cli, dump: Dump, *args: str, input: str | None = None) -> str:
    """Run a command that must be refused: exit 3, nothing written, one sentence per problem."""
    before = dump()
    result = cli(*args, input=input)
    assert result.exit_code == 3, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert dump() == before
    return str(result.stderr)


def checked(cli: Cli) -> None:
    ok(cli("check"))


def test_a_clerks_morning(seeded: Cli, dump: Dump) -> None:
    cli = seeded
    key = ok(cli("payment", "record", "--client", "C-1", "--amount", "60.00", "--date", "2026-11-20",
                 "--apply-to", "specific", "--method", "check", "--reference", "1042", "--note", "for Oct")).stdout
    key = key.strip()
    assert key.startswith("P-")
    checked(cli)

    bucket = json.loads(ok(cli("unallocated", "--json")).stdout)
    assert [(b["client_id"], b["unallocated"], b["charges_balance"], b["needs_clerk"]) for b in bucket] == [
        ("C-1", "60.00", "237.00", True)]
    table = ok(cli("unallocated")).stdout
    assert "Ann [bold]Lee[/]" in table and "Total" in table and "237.00" in table

    # The seed's example: both reasons, nothing written.
    err = refused(cli, dump, "apply", key, "X=200.00", "Z=20.00")
    assert err.splitlines() == [
        "error: nothing was applied: 2 problems with the allocations",
        "  200.00 exceeds the 187.00 balance of charge X",
        f"  220.00 in total exceeds the 60.00 unapplied on payment {key}",
    ]

    applied = json.loads(ok(cli("apply", key, "X=40", "Z=20", "--json")).stdout)
    assert [(a["charge_id"], a["amount"], a["status"], a["source"], a["staff"]) for a in applied] == [
        ("X", "40.00", "ready", "manual", "clerk1"), ("Z", "20.00", "ready", "manual", "clerk1")]
    checked(cli)
    assert json.loads(ok(cli("unallocated", "--json")).stdout) == []

    detail = json.loads(ok(cli("client", "show", "C-1", "--json")).stdout)
    assert (detail["unallocated"], detail["charges_balance"]) == ("0.00", "177.00")
    assert [c["charge_id"] for c in detail["insurance_charges"]] == ["INS"]
    shown = ok(cli("client", "show", "C-1")).stdout
    assert "Insurance charges (not allocatable)" in shown and "for Oct" in shown

    # A mistake: move the 40.00 from X to Z... Z has only 30.00 open, so 10.00 goes back to X.
    rid = str(applied[0]["id"])
    out = ok(cli("--staff", "supervisor", "reallocate", rid, "Z=30", "X=10", "--reason", "wrong session"))
    # The money moved: the message says where it went, not that it "is unapplied again".
    assert out.stderr == (f"reversed remittance {rid} (40.00 of payment {key} to charge X) and applied 40.00"
                          f" in 2 remittances; payment {key} has 0.00 unapplied\n")
    checked(cli)
    # And give 10.00 back for the clerk to place later.
    z = json.loads(ok(cli("payment", "show", key, "--json")).stdout)["remittances"]
    live = [r for r in z if r["status"] == "ready" and r["charge_id"] == "X"]
    assert live[0]["origin"] == "supervisor"
    unapplied = json.loads(ok(cli("unapply", str(live[0]["id"]), "--reason", "ask client", "--json")).stdout)
    assert unapplied["unapplied"] == "10.00"
    checked(cli)
    bucket = json.loads(ok(cli("unallocated", "--json")).stdout)
    assert [(b["client_id"], b["unallocated"], b["charges_balance"]) for b in bucket] == [("C-1", "10.00", "187.00")]

    trail = json.loads(ok(cli("audit", "--client", "C-1", "--json")).stdout)
    assert [(a["action"], a["staff"]) for a in trail] == [
        ("payment.record", "clerk1"), ("apply", "clerk1"), ("apply", "clerk1"),
        ("apply", "supervisor"), ("apply", "supervisor"), ("reallocate", "supervisor"), ("unapply", "clerk1")]
    assert "reallocate" in ok(cli("audit")).stdout

    out = ok(cli("payment", "void", key, "--reason", "NSF"))
    assert "reversed 2 remittances (50.00)" in out.stderr
    checked(cli)
    assert json.loads(ok(cli("client", "show", "C-1", "--json")).stdout)["charges_balance"] == "237.00"


def test_payment_commands(seeded: Cli, dump: Dump) -> None:
    cli = seeded
    recorded = ok(cli("payment", "record", "--client", "C-2", "--amount", "25", "--date", "2026-11-01",
                      "--apply-to", "oldest", "--pending", "--id", "P-7", "--payer-name", "Mom"))
    assert recorded.stdout == "P-7\n" and "warning" not in recorded.stderr
    later = ok(cli("payment", "record", "--client", "C-2", "--amount", "5", "--date", "2999-06-01",
                   "--apply-to", "specific", "--id", "P-F"))  # recorded as given, but the clerk is told
    assert later.stdout == "P-F\n"
    assert "warning: payment P-F: its received date 2999-06-01 is after today" in later.stderr
    assert "is void" in ok(cli("payment", "void", "P-F", "--reason", "typo in the year")).stderr
    assert json.loads(ok(cli("unallocated", "--json")).stdout) == []
    rows = list(csv.DictReader(io.StringIO(ok(cli("unallocated", "--all", "--csv")).stdout)))
    assert rows == [{"client_id": "C-2", "name": "Bob", "total_payments": "25.00", "unallocated": "0.00",
                     "charges_balance": "40.00", "needs_clerk": "false", "days_waiting": "", "pending": "25.00"}]
    assert "is now ready" in ok(cli("payment", "ready", "P-7")).stderr
    assert "already ready" in ok(cli("payment", "ready", "P-7")).stderr
    assert "now applies to specific" in ok(cli("payment", "mode", "P-7", "specific")).stderr
    assert "already applies to specific" in ok(cli("payment", "mode", "P-7", "specific")).stderr
    shown = ok(cli("payment", "show", "P-7")).stdout
    assert "Mom" in shown and "specific (entered as oldest)" in shown
    assert "no remittances" in ok(cli("payment", "show", "P-7")).stderr

    assert refused(cli, dump, "payment", "record", "--client", "C-2", "--amount", "25", "--date", "2026-11-01",
                   "--apply-to", "oldest", "--id", "P-7") == "error: payment P-7 already exists\n"
    assert refused(cli, dump, "payment", "record", "--client", "C-404", "--amount", "1", "--date", "2026-11-01",
                   "--apply-to", "oldest") == "error: client C-404 is not in the ledger\n"
    assert "YYYY-MM-DD" in refused(cli, dump, "payment", "record", "--client", "C-2", "--amount", "1",
                                   "--date", "11/01/2026", "--apply-to", "oldest")
    assert "needs --event" in refused(cli, dump, "payment", "record", "--client", "C-2", "--amount", "1",
                                      "--date", "2026-11-01", "--apply-to", "event")
    assert refused(cli, dump, "payment", "ready", "P-404") == "error: payment P-404 is not in the ledger\n"
    voided = ok(cli("payment", "void", "P-7", "--reason", "bounced"))  # pending: never allocated
    assert voided.stderr == "payment P-7 is void; it had no remittances to reverse\n"
    assert refused(cli, dump, "payment", "void", "P-7", "--reason", "again") == "error: payment P-7 is already void\n"
    assert "is void" in refused(cli, dump, "payment", "mode", "P-7", "oldest")


def test_recording_a_check_twice_is_pointed_out(seeded: Cli, conn: sqlite3.Connection) -> None:
    cli = seeded
    add_payment(conn, "P-1", "C-1", "2026-11-20", 6000, apply_to="specific", reference="1042")
    add_payment(conn, "P-V", "C-1", "2026-11-20", 6000, apply_to="specific", reference="1042", status="void")
    record = ("payment", "record", "--client", "C-1", "--amount", "60", "--date", "2026-11-20", "--apply-to",
              "specific", "--reference")
    result = ok(cli(*record, "1042"))
    key = result.stdout.strip()
    assert result.stderr == (
        f"warning: payment {key}: payment P-1 of the same client has the same amount, date and reference; if it is"
        f' the same money, void this one: payalloc payment void {key} --reason "recorded twice"\n')
    # Another check number, another client, or only a void payment alike: nothing to point out.
    assert ok(cli(*record, "1043")).stderr == ""
    add_payment(conn, "P-2", "C-2", "2026-11-20", 6000, apply_to="specific", reference="77")
    assert ok(cli(*record[:3], "C-1", *record[4:], "77")).stderr == ""


def test_unallocated_csv_has_the_same_columns_with_or_without_all(seeded: Cli, conn: sqlite3.Connection) -> None:
    cli = seeded
    add_payment(conn, "Y", "C-1", "2026-11-01", 6000, apply_to="specific")
    add_payment(conn, "W", "C-1", "2026-11-02", 2500, apply_to="specific", status="pending")
    add_payment(conn, "V", "C-2", "2026-11-02", 1000, apply_to="specific", status="pending")
    fields = list(json.loads(ok(cli("unallocated", "--json")).stdout)[0])
    ready_only = list(csv.reader(io.StringIO(ok(cli("unallocated", "--csv")).stdout, newline="")))
    with_pending = list(csv.reader(io.StringIO(ok(cli("unallocated", "--all", "--csv")).stdout, newline="")))
    assert ready_only[0] == with_pending[0] == fields  # a script's column indexes hold either way
    assert [dict(zip(fields, r, strict=True))["pending"] for r in ready_only[1:]] == ["25.00"]
    assert sorted(dict(zip(fields, r, strict=True))["pending"] for r in with_pending[1:]) == ["10.00", "25.00"]


def test_apply_refusals_through_the_cli(seeded: Cli, conn: sqlite3.Connection, dump: Dump) -> None:
    cli = seeded
    add_payment(conn, "OLD", "C-1", "2026-11-01", 5000, apply_to="oldest")
    add_payment(conn, "PEND", "C-1", "2026-11-01", 5000, apply_to="specific", status="pending")
    add_payment(conn, "Y", "C-1", "2026-11-01", 5000, apply_to="specific")
    assert "payalloc payment mode OLD specific" in refused(cli, dump, "apply", "OLD", "X=1")
    assert "payalloc payment ready PEND" in refused(cli, dump, "apply", "PEND", "X=1")
    err = refused(cli, dump, "apply", "Y", "INS=1", "B=1", "Q=1", "X=1,00")
    assert err.splitlines()[1:] == [
        "  argument 4 (X=1,00): '1,00' is not an amount like 1,234.50: a comma only groups thousands, cents come"
        " after a point",
        "  charge INS is billed to insurance and is never allocated client payments",
        "  charge B belongs to client C-2, not to client C-1 of payment Y",
        "  charge Q is not in the ledger (payalloc client show C-1 lists the open charges)",
    ]
    assert "is not CHARGE_ID=AMOUNT" in refused(cli, dump, "apply", "Y", "X:10")
    # A bad payment id is one problem, of the payment id: not one per pair, blamed on the pair.
    assert refused(cli, dump, "apply", " ", "X=1", "Z=1") == "error: nothing was applied: payment_id is empty\n"
    assert refused(cli, dump, "apply", "P" * 65, "X=1", "Z=1") == (
        "error: nothing was applied: payment_id is longer than 64 characters\n")
    assert "remittance 99 is not in the ledger" in refused(cli, dump, "unapply", "99", "--reason", "x")
    assert "remittance 99 is not in the ledger" in refused(cli, dump, "reallocate", "99", "X=1", "--reason", "x")


def test_apply_file_and_stdin(seeded: Cli, conn: sqlite3.Connection, dump: Dump, tmp_path: Path) -> None:
    cli = seeded
    add_payment(conn, "Y", "C-1", "2026-11-01", 6000, apply_to="specific")
    add_payment(conn, "Y2", "C-2", "2026-11-01", 6000, apply_to="specific")
    err = refused(cli, dump, "apply", "--file", "-", input="payment_id,charge_id,amount\nY,X,200.00\nY,Z,20.00\n")
    assert "200.00 exceeds the 187.00 balance of charge X" in err
    assert "220.00 in total exceeds the 60.00 unapplied on payment Y" in err
    assert refused(cli, dump, "apply", "--file", "-", input="payment_id,charge_id,amount\n") == \
        "error: stdin has no allocation rows under its header\n"
    path = tmp_path / "a.csv"
    path.write_text("payment_id,charge_id,amount,who\nY,X,10,me\nY2,B,40,me\n", encoding="utf-8")
    result = ok(cli("apply", "--file", str(path)))
    assert "warning: ignored unknown column: who" in result.stderr
    assert "applied 50.00 in 2 remittances" in result.stderr
    checked(cli)


def test_a_repeated_charge_is_refused_on_the_command_line_and_named_in_a_file(
    seeded: Cli, conn: sqlite3.Connection, dump: Dump
) -> None:
    cli = seeded
    add_payment(conn, "Y", "C-1", "2026-11-01", 6000, apply_to="specific")
    assert refused(cli, dump, "apply", "Y", "X=5", "X=5").splitlines() == [
        "error: nothing was applied: 1 problem with the allocations",
        "  argument 2 (X=5): charge X is already given in argument 1 (X=5); give each charge once, with its whole"
        " amount",
    ]
    result = ok(cli("apply", "--file", "-", input="payment_id,charge_id,amount\nY,X,5\nY,X,5\n"))
    rid = json.loads(ok(cli("remittances", "list", "--json")).stdout)[0]["id"]
    assert (f"warning: line 2 and line 3 each allocate payment Y to charge X: added up into remittance {rid}"
            " (10.00)") in result.stderr
    assert "applied 10.00 in 1 remittance" in result.stderr


def test_unapply_partial_and_job_warning(seeded: Cli, conn: sqlite3.Connection) -> None:
    cli = seeded
    add_payment(conn, "Y", "C-1", "2026-11-01", 6000, apply_to="specific")
    rid = json.loads(ok(cli("apply", "Y", "X=60", "--json")).stdout)[0]["id"]
    out = ok(cli("unapply", str(rid), "--reason", "too much", "--amount", "20")).stderr
    assert "20.00 is unapplied again; 40.00 stays applied as remittance" in out
    ok(cli("payment", "mode", "Y", "oldest"))
    rows = json.loads(ok(cli("payment", "show", "Y", "--json")).stdout)["remittances"]
    kept = next(r for r in rows if r["status"] == "ready")
    out = ok(cli("unapply", str(kept["id"]), "--reason", "x")).stderr
    assert "warning: payment Y applies to oldest: the next run-job will apply this money again" in out
    checked(cli)


def test_unapplying_a_posted_remittance_says_the_journal_got_reversing_lines(seeded: Cli, conn: sqlite3.Connection) -> None:
    cli = seeded
    add_payment(conn, "Y", "C-1", "2026-11-01", 6000, apply_to="specific")
    rid = json.loads(ok(cli("apply", "Y", "X=60", "--json")).stdout)[0]["id"]
    ok(cli("gl", "map", "unapplied_default", "2150"))
    ok(cli("gl", "map", "self_pay_ar", "1210"))
    ok(cli("run-job", "-q"))
    out = ok(cli("unapply", str(rid), "--reason", "wrong session")).stderr
    assert out == (f"reversed remittance {rid} (60.00 of payment Y to charge X); 60.00 is unapplied again; it was"
                   " posted, so reversing lines were written to the general ledger journal\n")
    journal = json.loads(ok(cli("gl", "export", "--json")).stdout)
    assert sorted((j["entry"], j["account"], j["debit"], j["credit"]) for j in journal if j["remittance_id"] == rid) == [
        ("post", "1210", "0.00", "60.00"), ("post", "2150", "60.00", "0.00"),
        ("reverse", "1210", "60.00", "0.00"), ("reverse", "2150", "0.00", "60.00")]
    checked(cli)


def test_voiding_a_payment_says_how_many_of_its_remittances_were_posted(seeded: Cli, conn: sqlite3.Connection) -> None:
    cli = seeded
    add_payment(conn, "Y", "C-1", "2026-11-01", 6000, apply_to="specific")
    ok(cli("apply", "Y", "X=40", "Z=10"))
    ok(cli("gl", "map", "unapplied_default", "2150"))
    ok(cli("gl", "map", "self_pay_ar", "1210"))
    ok(cli("run-job", "-q"))
    ok(cli("apply", "Y", "Z=5"))  # after the run: still ready
    assert ok(cli("payment", "void", "Y", "--reason", "check returned NSF")).stderr == (
        "payment Y is void; reversed 3 remittances (55.00); 2 of them were posted, so reversing lines were written"
        " to the general ledger journal\n")
    add_payment(conn, "W", "C-1", "2026-11-02", 1000, apply_to="specific")
    ok(cli("apply", "W", "X=2"))
    ok(cli("run-job", "-q"))
    ok(cli("apply", "W", "X=3"))
    assert "; 1 of them was posted, so" in ok(cli("payment", "void", "W", "--reason", "stopped")).stderr
    checked(cli)


def test_a_remittance_id_beyond_sqlites_integers_is_a_usage_error_not_a_crash(seeded: Cli, dump: Dump) -> None:
    before = dump()
    for args, what in ((("unapply", str(2**64), "--reason", "x"), "a remittance id"),
                       (("reallocate", str(2**63), "CH-1=1.00", "--reason", "x"), "a remittance id"),
                       (("unapply", "abc", "--reason", "x"), "a remittance id"),
                       (("unapply", "0", "--reason", "x"), "a remittance id"),
                       (("unapply", "\u0663", "--reason", "x"), "a remittance id"),  # an Arabic-Indic 3
                       (("jobs", "--limit", str(10**30)), "a number of rows"),
                       (("jobs", "--limit", "-1"), "a number of rows")):
        refused = seeded(*args)
        assert refused.exit_code == 2, (args, refused.stderr)
        rule = "(a whole number; 0 for all)" if args[0] == "jobs" else "(a whole number from 1)"
        assert f"'{args[1 + (args[0] == 'jobs')]}' is not {what} {rule}" in refused.stderr
    largest = seeded("unapply", str(2**63 - 1), "--reason", "x")
    assert largest.exit_code == 3 and "is not in the ledger" in largest.stderr
    assert dump() == before


def test_unallocated_shows_pending_money_whenever_it_is_in_the_payments_figure(
    seeded: Cli, conn: sqlite3.Connection
) -> None:
    """Payments counts a pending check too; without its column, Payments - Unallocated would not be
    what was allocated."""
    add_payment(conn, "P-R", "C-2", "2026-10-05", 2500, apply_to="specific")
    table = ok(seeded("unallocated")).stdout
    assert "Pending" not in table  # nothing pending: the usual, narrower table
    add_payment(conn, "P-P", "C-2", "2026-10-06", 3000, apply_to="specific", status="pending")
    table = ok(seeded("unallocated")).stdout
    assert "Pending" in table
    assert re.search(r"C-2 .* 55\.00 .* 25\.00 .* 30\.00", table), table  # payments, unallocated, pending


def test_audit_since_and_csv(seeded: Cli, conn: sqlite3.Connection) -> None:
    cli = seeded
    add_payment(conn, "Y", "C-1", "2026-11-01", 6000, apply_to="specific")
    ok(cli("apply", "Y", "X=1"))
    rows = list(csv.DictReader(io.StringIO(ok(cli("audit", "--csv")).stdout)))
    assert [(r["action"], r["staff"], r["payment_id"], r["charge_id"]) for r in rows] == [
        ("apply", "clerk1", "Y", "X")]
    assert json.loads(ok(cli("audit", "--since", "2999-01-01", "--json")).stdout) == []
    assert cli("audit", "--since", "yesterday").exit_code == 3


def test_audit_table_shows_the_detail_as_words_and_csv_keeps_the_json(seeded: Cli, conn: sqlite3.Connection) -> None:
    cli = seeded
    add_payment(conn, "Y", "C-1", "2026-11-01", 6000, apply_to="specific")
    ok(cli("apply", "Y", "X=1"))
    ok(cli("unapply", "1", "--amount", "0.40", "--reason", "keyed wrong"))
    table = ok(cli("audit", "--limit", "1")).stdout
    cells = [line.split("│")[-2].strip() for line in table.splitlines() if line.startswith("│")]
    assert cells == ["amount: 0.40", "kept: 0.60", "kept remittance id: 2", "was status: ready"], table
    from payalloc.cli.clerk import _readable  # a line break in a value (a file name) forges no line
    assert _readable({"file": "x\nkept: 99.00.csv", "inserted": 1}) == "file: x\ufffdkept: 99.00.csv\ninserted: 1"
    rows = list(csv.DictReader(io.StringIO(ok(cli("audit", "--csv")).stdout)))
    assert json.loads(rows[-1]["detail"]) == {"amount": "0.40", "kept": "0.60", "kept_remittance_id": 2,
                                              "was_status": "ready"}


def test_audit_table_and_csv_name_the_event(seeded: Cli) -> None:
    """An event_delete row must say which event: the table had no Event column, only --json did."""
    cli = seeded
    ok(cli("event", "add", "--client", "C-1", "--date", "2026-12-01", "--id", "E-77"))
    ok(cli("event", "delete", "E-77", "--yes"))
    trail = json.loads(ok(cli("audit", "--json")).stdout)
    deleted = [a for a in trail if a["event_id"] == "E-77"]
    assert {a["action"] for a in deleted} >= {"event_delete"}, trail
    table = ok(cli("audit")).stdout
    header = next(line for line in table.splitlines() if "Action" in line)
    assert "Event" in header
    assert re.search(r"event_delete .*│ E-77 ", table), table
    rows = list(csv.DictReader(io.StringIO(ok(cli("audit", "--csv")).stdout)))
    assert "event_id" in rows[0]
    assert [r["event_id"] for r in rows if r["action"] == "event_delete"] == ["E-77"]


def test_audit_of_an_unknown_client_is_refused_like_the_other_client_filters(seeded: Cli) -> None:
    for args in (("audit", "--client", "C-9999"), ("audit", "--client", "C-9999", "--json"),
                 ("payment", "list", "--client", "C-9999"), ("event", "list", "--client", "C-9999")):
        result = seeded(*args)
        assert (result.exit_code, result.stderr, result.stdout) == (
            3, "error: client C-9999 is not in the ledger\n", ""), args
    known = ok(seeded("audit", "--client", "C-2"))  # a client with nothing done by hand yet
    assert known.stderr == "no audit entries\n"
    assert json.loads(ok(seeded("audit", "--client", "C-2", "--json")).stdout) == []


def test_usage_errors_exit_2(seeded: Cli, conn: sqlite3.Connection, dump: Dump) -> None:
    """Spec: 2 = usage error (bad option, missing argument), one sentence; 3 is for refused input."""
    add_payment(conn, "Y", "C-1", "2026-11-01", 6000, apply_to="specific")
    before = dump()
    both = [("unallocated",), ("client", "list"), ("payment", "list"), ("remittances", "list"), ("audit",),
            ("event", "list"), ("gl", "export"), ("jobs",), ("payment", "list", "--client", "C-9999")]
    for args in both:
        result = seeded(*args, "--json", "--csv")
        assert (result.exit_code, result.stderr, result.stdout) == (
            2, "error: choose one of --json and --csv\n", ""), args
    result = seeded("run-job", "-q", "--json")
    assert (result.exit_code, result.stderr) == (2, "error: choose one of --json and --quiet\n")
    result = seeded("apply", "Y")
    assert (result.exit_code, result.stderr) == (
        2, "error: give CHARGE_ID=AMOUNT pairs after the payment id, or --file F\n")
    result = seeded("event", "list", "--status", "bogus")
    assert result.exit_code == 2 and "'bogus' is not one of 'scheduled', 'done', 'deleted'" in result.stderr
    assert dump() == before
    # The same one-sentence style as the other usage errors, not Click's "Invalid value:" with no name.
    result = seeded("apply")
    assert (result.exit_code, result.stderr) == (
        2, "error: give PAYMENT_ID CHARGE_ID=AMOUNT... or --file F (see payalloc apply --help)\n")
    result = seeded("apply", "Y", "X=1", "--file", "f.csv")
    assert (result.exit_code, result.stderr) == (
        2, "error: give either PAYMENT_ID CHARGE_ID=AMOUNT... or --file F, not both\n")
    assert seeded("payment", "mode", "Y", "event").exit_code == 2
    # Click's own usage errors in that style too: one line naming the command's --help.
    result = seeded("payment", "record", "--client", "C-1001")
    assert (result.exit_code, result.stderr) == (
        2, "error: Missing option '--amount' (see payalloc payment record --help)\n")
    result = seeded("import", "clientz", "f.csv")
    assert (result.exit_code, result.stderr) == (
        2, "error: Invalid value for 'KIND': 'clientz' is not one of 'clients', 'events', 'charges', 'payments'"
           " (see payalloc import --help)\n")
    # Click's "Choose from:" list, laid out on lines of its own there: one line of words here.
    result = seeded("payment", "record", "--client", "C-1001", "--amount", "5", "--date", "2026-11-20")
    assert (result.exit_code, result.stderr) == (
        2, "error: Missing option '--apply-to'. Choose from: oldest, specific, event"
           " (see payalloc payment record --help)\n")
    result = seeded("payment", "list", "--limit")  # refused by the parser, before the command has a context
    assert (result.exit_code, result.stderr) == (
        2, "error: Option '--limit' requires an argument (see payalloc --help)\n")
    result = seeded("payment", "--db", "x.db", "list")
    assert (result.exit_code, result.stderr) == (
        2, "error: --db is a global option: it goes before the command, as in payalloc --db FILE payment ..."
           " (see payalloc --help)\n")
    # A global option after the command (a script's `payalloc check --db x.db`): where it goes.
    for args, shown in ((("check", "--db", "x.db"), "--db FILE check"), (("check", "--db=x.db"), "--db FILE check"),
                        (("payment", "list", "--staff", "x"), "--staff NAME payment list"),
                        (("client", "list", "--debug"), "--debug client list")):
        result = seeded(*args)
        option = args[-1].split("=")[0] if args[-1].startswith("--") else args[-2]
        assert (result.exit_code, result.stderr) == (
            2, f"error: {option} is a global option: it goes before the command, as in payalloc {shown}"
               " (see payalloc --help)\n"), args
    assert dump() == before


def test_client_show_of_a_new_client_says_each_empty_section_on_stdout(cli: Cli) -> None:
    """`client show C > file` keeps the whole report: its empty sections are part of it."""
    ok(cli("import", "clients", "-", input="client_id,name\nC-NEW,New Client\n"))
    shown = ok(cli("client", "show", "C-NEW"))
    assert shown.stderr == ""
    assert [line for line in shown.stdout.splitlines() if ": no " in line] == [
        "Payments: no payments", "Open self-pay charges (oldest first): no open self-pay charges",
        "Remittances: no remittances"]


@pytest.mark.parametrize("command", [
    ("payment", "ready"), ("payment", "void"), ("payment", "mode"), ("payment", "show"), ("client", "show"),
    ("apply",), ("unapply",), ("reallocate",), ("event", "done"), ("import",), ("backup",),
])
def test_usage_lines_name_the_arguments_as_the_readme_does(cli: Cli, command: tuple[str, ...]) -> None:
    # "payment void [OPTIONS] {payment_id}" beside "unapply [OPTIONS] {REMITTANCE_ID}": one way, the README's.
    usage = ok(cli(*command, "--help")).stdout.splitlines()[0]
    assert not re.search(r"[{\[][a-z]", usage), usage


def test_apply_help_shows_both_ways_and_what_happens_to_a_repeated_charge(cli: Cli) -> None:
    text = " ".join(ok(cli("apply", "--help")).stdout.split())
    assert "Example: payalloc apply P-3004 CH-2013=40.00 CH-2015=20.00" in text
    assert "Example: payalloc apply --file allocations.csv" in text
    assert "header row payment_id,charge_id,amount" in text
    assert "a charge given twice is refused" in text


@pytest.mark.parametrize("width", [80, 60, 50])
def test_work_list_and_audit_keep_ids_and_amounts_whole_on_a_narrow_terminal(
        seeded: Cli, conn: sqlite3.Connection, width: int) -> None:
    cli = seeded
    add_client(conn, "C-100234", "Rowan Mbeki-Alvarez, Jr. (guardian: Maria Alvarez)")
    add_charge(conn, "CH-20261120-0001", "C-100234", "2026-10-01", 1234567)
    add_payment(conn, "P-20261120-3f9a1c", "C-100234", "2026-11-01", 1000000, apply_to="specific")
    add_payment(conn, "Y", "C-1", "2026-11-01", 6000, apply_to="specific")
    ok(cli("apply", "P-20261120-3f9a1c", "CH-20261120-0001=2,500.00"))
    ok(cli("apply", "Y", "X=60"))
    ok(cli("event", "add", "--client", "C-100234", "--date", "2026-12-01", "--id", "EV-20261201-0001"))
    env = {"COLUMNS": str(width)}
    work = ok(cli("unallocated", env=env)).stdout
    assert fits(work, width), work
    for entry in json.loads(ok(cli("unallocated", "--json")).stdout):
        assert whole(entry["client_id"], work), work
    for amount in ("10,000.00", "7,500.00", "9,845.67"):
        assert whole(amount, work), (amount, work)
    if width == 80:  # the clerk's work list stays a table on a standard terminal
        assert "┃ Name" in work and "-[ 1 ]" not in work
    trail = ok(cli("audit", env=env)).stdout
    assert fits(trail, width), trail
    for entry in json.loads(ok(cli("audit", "--json")).stdout):
        for key in ("at", "client_id", "payment_id", "charge_id", "event_id", "remittance_id"):
            if entry[key] is not None:
                assert whole(str(entry[key]), trail), (key, trail)



@pytest.mark.parametrize(("staff", "reason"), [
    ("a\x1b[31mb", "contains control or invisible characters"),
    ("s" * 65, "is longer than 64 characters"),
    ("   ", "is empty"),  # given but blank: not silently the (perhaps shared) login name
])
def test_a_staff_name_is_held_to_the_rule_of_ids(seeded: Cli, dump: Dump, staff: str, reason: str) -> None:
    """The audit trail and exports carry the staff name as given: no escape codes, no essays."""
    key = ok(seeded("payment", "record", "--client", "C-1", "--amount", "5", "--date", "2026-11-20",
                    "--apply-to", "specific")).stdout.strip()
    expected = f"error: the staff name (--staff or PAYALLOC_STAFF) {reason}\n"
    assert refused(seeded, dump, "--staff", staff, "apply", key, "X=1") == expected
    before = dump()
    result = seeded("apply", key, "X=1", env={"PAYALLOC_STAFF": staff})
    assert (result.exit_code, result.stderr, dump()) == (3, expected, before)
    ok(seeded("--staff", "  jdoe ", "apply", key, "X=1"))
    rows = json.loads(ok(seeded("remittances", "list", "--payment", key, "--json")).stdout)
    assert [r["staff"] for r in rows] == ["jdoe"]


def test_an_empty_staff_variable_is_refused_not_the_login_name(seeded: Cli, dump: Dump) -> None:
    """PAYALLOC_STAFF=$CLERK with $CLERK unset: Click reads an empty variable as unset, and the audit
    named the login name (a shared service account). Refused where a staff name is needed (exit 2);
    --staff still overrides it, and a listing, which records no one, still runs."""
    key = ok(seeded("payment", "record", "--client", "C-1", "--amount", "5", "--date", "2026-11-20",
                    "--apply-to", "specific")).stdout.strip()
    before = dump()
    result = seeded("apply", key, "X=1", env={"PAYALLOC_STAFF": ""})
    assert (result.exit_code, result.stderr, dump()) == (
        2, "error: PAYALLOC_STAFF is set but empty: give a staff name, or unset it to use the login name\n", before)
    ok(seeded("--staff", "jdoe", "apply", key, "X=1", env={"PAYALLOC_STAFF": ""}))
    ok(seeded("payment", "list", env={"PAYALLOC_STAFF": ""}))
    rows = json.loads(ok(seeded("remittances", "list", "--payment", key, "--json")).stdout)
    assert [r["staff"] for r in rows] == ["jdoe"]


NOT_UTF8 = "paid \udcff\udc9b by check"  # what Python makes of bytes 0xff 0x9b in an argument


@pytest.mark.parametrize(("args", "names"), [
    (("payment", "record", "--client", "C-1", "--amount", "5", "--date", "2026-10-03", "--apply-to", "specific",
      "--note", NOT_UTF8), "--note"),
    (("payment", "record", "--client", "C-1", "--amount", "5", "--date", "2026-10-03", "--apply-to", "specific",
      "--reference", NOT_UTF8), "--reference"),
    (("payment", "record", "--client", "C-1", "--amount", "5", "--date", "2026-10-03", "--apply-to", "specific",
      "--payer-name", NOT_UTF8), "--payer-name"),
    (("payment", "void", "P-1", "--reason", NOT_UTF8), "--reason"),
    (("unapply", "1", "--reason", NOT_UTF8), "--reason"),
    (("reallocate", "1", "Z=1.00", "--reason", NOT_UTF8), "--reason"),
    (("remittances", "list", "--client", NOT_UTF8), "client_id"),
    (("remittances", "list", "--payment", NOT_UTF8), "payment_id"),
    (("payment", "list", "--client", NOT_UTF8), "client_id"),
])
def test_an_argument_that_is_not_utf8_is_refused_not_an_internal_error(
        seeded: Cli, conn: sqlite3.Connection, dump: Dump, args: tuple[str, ...], names: str) -> None:
    add_payment(conn, "P-1", "C-1", "2026-10-03", 6000, apply_to="specific")
    ok(seeded("apply", "P-1", "X=10.00"))
    stderr = refused(seeded, dump, *args)
    assert names in stderr and "internal error" not in stderr, stderr


def test_a_login_name_with_control_characters_is_refused_like_a_staff_name(seeded: Cli, dump: Dump,
                                                                         conn: sqlite3.Connection) -> None:
    add_payment(conn, "P-1", "C-1", "2026-10-03", 6000, apply_to="specific")
    before = dump()
    result = seeded("apply", "P-1", "X=10.00", env={"PAYALLOC_STAFF": None, "LOGNAME": "eve\x1b[2J"})  # type: ignore[dict-item]
    assert result.exit_code == 3 and "login name" in result.stderr, result.stderr
    assert dump() == before
    ok(seeded("apply", "P-1", "X=10.00", env={"PAYALLOC_STAFF": None, "LOGNAME": "jdoe"}))  # type: ignore[dict-item]
    assert conn.execute("SELECT staff FROM remittances").fetchall() == [("jdoe",)]


@pytest.mark.parametrize("args", [
    ("client", "show", "C-1"), ("payment", "list"), ("gl", "show"), ("unallocated",), ("run-job", "--dry-run"),
    ("payment", "list", "--json"),
])
def test_a_reader_that_goes_away_is_not_an_error(seeded: Cli, ledger_path: Path, args: tuple[str, ...]) -> None:
    # `payalloc client show C-1 | head -1` under `set -o pipefail`: exit 1 would mean a bug (spec).
    assert seeded("payment", "record", "--client", "C-1", "--amount", "50", "--date", "2026-10-03",
                  "--apply-to", "oldest").exit_code == 0
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line is written
    try:
        proc = subprocess.run([sys.executable, "-m", "payalloc", "--db", str(ledger_path), *args],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60, check=False)
    finally:
        os.close(write_end)
    assert proc.returncode == 0, proc.stderr
    assert "error" not in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(("args", "message"), [
    (("payment", "record", "--client", "C-1", "--amount", "5", "--date", "2026-10-03", "--apply-to", "specific",
      "--note", "n" * 4001), "--note is longer than 4000 characters"),
    (("payment", "record", "--client", "C-1", "--amount", "5", "--date", "2026-10-03", "--apply-to", "specific",
      "--reference", "r" * 201), "--reference is longer than 200 characters"),
    (("payment", "void", "P-1", "--reason", "w" * 4001), "--reason is longer than 4000 characters"),
])
def test_free_text_has_the_limits_of_the_csv_columns(seeded: Cli, conn: sqlite3.Connection, dump: Dump,
                                                     args: tuple[str, ...], message: str) -> None:
    # A file pasted into --note would fill every screen that shows the payment.
    add_payment(conn, "P-1", "C-1", "2026-10-03", 6000, apply_to="specific")
    assert refused(seeded, dump, *args) == f"error: {message}\n"
    ok(seeded("payment", "record", "--client", "C-1", "--amount", "5", "--date", "2026-10-03", "--apply-to",
              "specific", "--note", "n" * 4000))


def test_client_show_says_what_each_open_charge_was_for(cli: Cli) -> None:
    """A payment's note names a service ("apply to the evaluation only"): the charges table
    shows each charge's description beside its id, and its event when one has any."""
    from tests.conftest import SAMPLE

    for kind in ("clients", "events", "charges"):
        ok(cli("import", kind, str(SAMPLE / f"{kind}.csv")))
    shown = ok(cli("client", "show", "C-1003")).stdout
    assert re.search(r"CH-2013 .* Psychiatric diagnostic", shown), shown
    assert "Event" not in shown  # none of C-1003's charges has one
    assert re.search(r"CH-2017 .* E-501", ok(cli("client", "show", "C-1004")).stdout)
