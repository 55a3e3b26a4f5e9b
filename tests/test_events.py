"""Events and rule 4's lifecycle through the CLI: add, list, done, delete with attached payments."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest

from payalloc.cli import events as events_cli
from payalloc.services import events as event_service
from tests.builders import add_charge, add_client, add_event, add_payment
from tests.conftest import Cli

NOW = "2026-11-23T02:00:00Z"


def apply_to(conn: sqlite3.Connection, payment: str) -> str:
    return str(conn.execute("SELECT apply_to FROM payments WHERE payment_key = ?", (payment,)).fetchone()[0])


def status(conn: sqlite3.Connection, event: str) -> str:
    return str(conn.execute("SELECT status FROM events WHERE event_key = ?", (event,)).fetchone()[0])


def audit(conn: sqlite3.Connection, action: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT staff, client_key, payment_key, event_key, reason FROM audit WHERE action = ? ORDER BY id", (action,)
    ).fetchall()


def event_with_payment(conn: sqlite3.Connection, status: str = "ready") -> None:
    """Client C1, event E1, and payment P1 (50.00) attached to it."""
    add_client(conn, "C1")
    add_event(conn, "E1", "C1")
    add_payment(conn, "P1", "C1", "2026-01-01", 5000, apply_to="event", event="E1", status=status)


def test_event_add_prints_the_id_and_is_audited(cli: Cli, conn: sqlite3.Connection) -> None:
    add_client(conn, "C1")
    given = cli("event", "add", "--client", "C1", "--date", "2026-12-01", "--id", " E-77 ")
    assert given.exit_code == 0 and given.stdout == "E-77\n"
    generated = cli("event", "add", "--client", "C1", "--date", "2026-12-02")
    assert generated.exit_code == 0 and generated.stdout == "EV-000002\n"
    rows = conn.execute("SELECT event_key, scheduled_date, status FROM events ORDER BY id").fetchall()
    assert rows == [("E-77", "2026-12-01", "scheduled"), ("EV-000002", "2026-12-02", "scheduled")]
    assert audit(conn, "event_add") == [("clerk1", "C1", None, "E-77", None), ("clerk1", "C1", None, "EV-000002", None)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--client", "C9", "--date", "2026-12-01"], "client C9 is not in the ledger"),
        (["--client", "C1", "--date", "12/01/2026"], "YYYY-MM-DD"),
        (["--client", "C1", "--date", "2026-12-01", "--id", "E1"], "event E1 already exists"),
    ],
)
def test_event_add_refusals(
    cli: Cli, conn: sqlite3.Connection, dump: Callable[[], list[str]], args: list[str], message: str
) -> None:
    add_client(conn, "C1")
    add_event(conn, "E1", "C1")
    before = dump()
    result = cli("event", "add", *args)
    assert result.exit_code == 3 and message in result.stderr
    assert dump() == before


def test_event_list_json_csv_and_filters(cli: Cli, conn: sqlite3.Connection) -> None:
    add_client(conn, "C1")
    add_client(conn, "C2")
    add_event(conn, "E1", "C1", "2026-01-10")
    add_event(conn, "E2", "C2", "2026-01-05", status="done")
    add_charge(conn, "CH1", "C1", "2026-01-10", 5000, event="E1")
    add_payment(conn, "P1", "C1", "2026-01-01", 12050, apply_to="event", event="E1", status="pending")
    data = json.loads(cli("event", "list", "--json").stdout)
    assert data == [
        {"event_id": "E2", "client_id": "C2", "scheduled_date": "2026-01-05", "status": "done", "charges": 0,
         "attached_payments": 0, "attached_unapplied": "0.00"},
        {"event_id": "E1", "client_id": "C1", "scheduled_date": "2026-01-10", "status": "scheduled", "charges": 1,
         "attached_payments": 1, "attached_unapplied": "120.50"},
    ]
    assert [e["event_id"] for e in json.loads(cli("event", "list", "--client", "C1", "--json").stdout)] == ["E1"]
    assert [e["event_id"] for e in json.loads(cli("event", "list", "--status", "done", "--json").stdout)] == ["E2"]
    rows = list(csv.DictReader(io.StringIO(cli("event", "list", "--csv").stdout)))
    assert rows[1]["attached_unapplied"] == "120.50" and rows[1]["event_id"] == "E1"
    table = cli("event", "list")
    assert table.exit_code == 0 and "120.50" in table.stdout
    bad = cli("event", "list", "--status", "gone")
    assert bad.exit_code == 2 and "'gone' is not one of 'scheduled', 'done', 'deleted'" in bad.stderr


def test_event_done_then_run_job_makes_the_rest_specific(cli: Cli, conn: sqlite3.Connection) -> None:
    add_client(conn, "C1")
    add_event(conn, "E1", "C1")
    add_charge(conn, "CH1", "C1", "2026-01-10", 3000, event="E1")
    add_payment(conn, "P1", "C1", "2026-01-01", 5000, apply_to="event", event="E1")
    done = cli("event", "done", "E1")
    assert done.exit_code == 0 and "1 attached payment will be applied" in done.stderr
    assert "no open self-pay charge" not in done.stderr  # CH1 has 30.00 for it
    assert status(conn, "E1") == "done" and apply_to(conn, "P1") == "event"  # the job converts, not the command
    assert audit(conn, "event_done") == [("clerk1", "C1", None, "E1", None)]
    again = cli("event", "done", "E1")
    assert again.exit_code == 0 and "already done" in again.stderr
    assert len(audit(conn, "event_done")) == 1

    assert cli("run-job", "-q").exit_code == 0
    assert apply_to(conn, "P1") == "specific"
    assert conn.execute("SELECT applied_cents FROM payments").fetchone()[0] == 3000


def test_event_done_without_its_charges_says_the_money_goes_to_the_clerk(cli: Cli, conn: sqlite3.Connection) -> None:
    """An event done before the billing system's charges arrive: rule 4 makes the whole deposit
    specific at the next run; the clerk hears it now, while importing the charges first can help."""
    add_client(conn, "C1")
    add_event(conn, "E1", "C1")
    add_charge(conn, "INS", "C1", "2026-01-10", 3000, event="E1", payer="insurance")  # never allocated
    add_payment(conn, "P1", "C1", "2026-01-01", 16000, apply_to="event", event="E1")
    done = cli("event", "done", "E1")
    assert done.exit_code == 0
    assert ("warning: event E1 has no open self-pay charge in the ledger: at the next run-job its attached"
            " payments (160.00) become apply-to specific") in done.stderr
    assert cli("run-job", "-q").exit_code == 0 and apply_to(conn, "P1") == "specific"


def test_delete_with_attached_payment_without_terminal_needs_yes(
    cli: Cli, conn: sqlite3.Connection, dump: Callable[[], list[str]]
) -> None:
    event_with_payment(conn)
    before = dump()
    refused = cli("event", "delete", "E1")
    assert refused.exit_code == 3
    assert refused.stderr == (
        "error: event E1 has 1 payment attached with 50.00 unapplied (P1); nothing was changed:"
        " confirm with --yes to delete it and make that payment apply to specific charges\n")
    assert dump() == before

    deleted = cli("event", "delete", "E1", "--yes")
    assert deleted.exit_code == 0
    assert deleted.stderr == "event E1 is deleted; payment P1 now applies to specific charges\n"
    assert status(conn, "E1") == "deleted" and apply_to(conn, "P1") == "specific"
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 1  # nothing is removed
    assert audit(conn, "event_delete") == [("clerk1", "C1", None, "E1", "event deleted")]
    assert audit(conn, "payment_apply_to_specific") == [
        ("clerk1", "C1", "P1", "E1", "event E1 was deleted and the payment is not fully applied")
    ]
    (detail,) = conn.execute("SELECT detail FROM audit WHERE action = 'payment_apply_to_specific'").fetchone()
    assert json.loads(detail)["unapplied"] == "50.00"  # money in JSON is a string, never raw cents
    again = cli("event", "delete", "E1", "--yes")
    assert again.exit_code == 0 and "already deleted" in again.stderr
    done = cli("event", "done", "E1")
    assert done.exit_code == 3 and "deleted" in done.stderr


def test_delete_on_a_terminal_asks_for_confirmation(
    cli: Cli, conn: sqlite3.Connection, dump: Callable[[], list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_cli, "_stdin_is_terminal", lambda: True)
    event_with_payment(conn, status="pending")
    before = dump()
    declined = cli("event", "delete", "E1", input="n\n")
    assert declined.exit_code == 3 and "payment P1 (pending, 50.00 unapplied) is attached" in declined.stderr
    assert "not deleted" in declined.stderr and dump() == before
    assert "Delete the event and make this payment apply to specific charges? [y/N]" in declined.stderr
    confirmed = cli("event", "delete", "E1", input="y\n")
    assert confirmed.exit_code == 0
    assert status(conn, "E1") == "deleted" and apply_to(conn, "P1") == "specific"


@pytest.mark.parametrize(("answers", "asked"), [("", 1), ("maybe\n", 2), ("maybe\nno\n", 2), ("?\n\n", 2)])
def test_delete_declined_by_end_of_input_or_after_an_unknown_answer(
    cli: Cli, conn: sqlite3.Connection, dump: Callable[[], list[str]], monkeypatch: pytest.MonkeyPatch,
    answers: str, asked: int,
) -> None:
    """End of input (Ctrl-D, a closed pipe) is a no, as n is; an unknown answer is asked again. Never
    Click's "Aborted!" and exit 1, which the spec keeps for bugs."""
    monkeypatch.setattr(events_cli, "_stdin_is_terminal", lambda: True)
    event_with_payment(conn)
    before = dump()
    result = cli("event", "delete", "E1", input=answers)
    assert result.exit_code == 3, result.output
    assert result.stderr.endswith("error: event E1 was not deleted; nothing was changed\n")
    assert result.stderr.count("[y/N]: ") == asked and result.stderr.count("please answer y or n") == asked - 1
    assert "Aborted" not in result.output and dump() == before


def test_delete_interrupted_at_the_question_is_exit_130(
    cli: Cli, conn: sqlite3.Connection, dump: Callable[[], list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_cli, "_stdin_is_terminal", lambda: True)
    event_with_payment(conn)
    before = dump()

    def ctrl_c() -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr("builtins.input", ctrl_c)
    result = cli("event", "delete", "E1")
    assert result.exit_code == 130
    assert result.stderr.splitlines()[-1].startswith("error: interrupted: a change not yet saved was rolled back")
    assert "Aborted" not in result.output and dump() == before


def test_delete_without_attached_money_needs_no_confirmation(cli: Cli, conn: sqlite3.Connection) -> None:
    add_client(conn, "C1")
    add_event(conn, "E1", "C1")
    add_charge(conn, "CH1", "C1", "2026-01-10", 5000, event="E1")
    add_payment(conn, "P-FULL", "C1", "2026-01-01", 5000, apply_to="event", event="E1")
    add_payment(conn, "P-VOID", "C1", "2026-01-01", 5000, apply_to="event", event="E1", status="pending")
    assert cli("run-job", "-q").exit_code == 0  # P-FULL is fully applied: done, no longer attached
    with conn:
        conn.execute("UPDATE payments SET status = 'void' WHERE payment_key = 'P-VOID'")
    result = cli("event", "delete", "E1")
    assert result.exit_code == 0
    assert apply_to(conn, "P-FULL") == "event" and apply_to(conn, "P-VOID") == "event"


def test_unknown_event_is_refused(cli: Cli) -> None:
    for args in (["done", "E404"], ["delete", "E404", "--yes"]):
        result = cli("event", *args)
        assert result.exit_code == 3 and "event E404 is not in the ledger" in result.stderr


def test_service_refuses_unconfirmed_delete(conn: sqlite3.Connection) -> None:
    event_with_payment(conn)
    assert [p.key for p in event_service.attached_payments(conn, "E1")] == ["P1"]
    with pytest.raises(event_service.InputError, match="confirm with --yes"):
        event_service.delete_event(conn, "E1", now=NOW, staff="clerk1", confirmed=False)
    change = event_service.delete_event(conn, "E1", now=NOW, staff="clerk1", confirmed=True)
    assert change.converted == ["P1"] and change.previous_status == "scheduled"


def test_taking_over_an_event_payment_says_it_leaves_its_event(cli: Cli, conn: sqlite3.Connection) -> None:
    """Rule 4 would keep the deposit on its event until the event is done or deleted; the clerk may
    take it over by hand, and is told which event it no longer waits for."""
    event_with_payment(conn)
    taken = cli("payment", "mode", "P1", "oldest")
    assert taken.exit_code == 0
    assert taken.stderr.strip() == "payment P1 now applies to oldest; it no longer waits for event E1"
    assert apply_to(conn, "P1") == "oldest"
    again = cli("payment", "mode", "P1", "specific")
    assert again.stderr.strip() == "payment P1 now applies to specific"


def test_delete_refuses_a_payment_attached_after_the_clerk_confirmed(
    cli: Cli, conn: sqlite3.Connection, dump: Callable[[], list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rule 4: the clerk is warned of each attached payment and confirms; one attached while the
    prompt waited (an import, another clerk) was never shown, so it must not become specific."""
    monkeypatch.setattr(events_cli, "_stdin_is_terminal", lambda: True)
    event_with_payment(conn)

    def confirm_while_another_arrives(_question: str) -> bool:
        add_payment(conn, "P2", "C1", "2026-01-02", 7000, apply_to="event", event="E1")
        return True

    monkeypatch.setattr(events_cli, "confirm", confirm_while_another_arrives)
    result = cli("event", "delete", "E1")
    assert "payment P1 (ready, 50.00 unapplied) is attached" in result.stderr
    assert result.exit_code == 3 and "P2" in result.stderr
    assert status(conn, "E1") == "scheduled"
    assert apply_to(conn, "P1") == "event" and apply_to(conn, "P2") == "event"
    assert audit(conn, "event_delete") == []


def test_service_delete_with_the_payments_shown(conn: sqlite3.Connection) -> None:
    event_with_payment(conn)
    add_payment(conn, "P2", "C1", "2026-01-02", 7000, apply_to="event", event="E1")
    with pytest.raises(event_service.InputError, match="P2"):
        event_service.delete_event(conn, "E1", now=NOW, staff="clerk1", confirmed=True, shown=["P1"])
    assert status(conn, "E1") == "scheduled"
    change = event_service.delete_event(conn, "E1", now=NOW, staff="clerk1", confirmed=True, shown=["P1", "P2", "P9"])
    assert change.converted == ["P1", "P2"]
