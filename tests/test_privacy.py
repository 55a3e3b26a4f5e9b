"""Health data stays private: every file payalloc creates is owner-only, and no error names a patient."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SAMPLE, Cli

SENTINEL = "ZZSENTINEL Patient"


def run(ledger: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # umask 022, the usual default: payalloc must not rely on the caller's umask.
    return subprocess.run(
        [sys.executable, "-m", "payalloc", "--db", str(ledger), *args],
        capture_output=True, text=True, preexec_fn=lambda: os.umask(0o022),
        env={**os.environ, "PAYALLOC_STAFF": "clerk1"},
    )


def test_every_file_payalloc_creates_is_owner_only(tmp_path: Path) -> None:
    ledger = tmp_path / "practice.db"
    assert run(ledger, "init").returncode == 0
    for kind in ("clients", "events", "charges", "payments"):
        assert run(ledger, "import", kind, str(SAMPLE / f"{kind}.csv")).returncode == 0
    assert run(ledger, "gl", "map", "unapplied_default", "2150").returncode == 0
    assert run(ledger, "gl", "map", "self_pay_ar", "1210").returncode == 0
    assert run(ledger, "run-job", "-q").returncode == 0
    assert run(ledger, "gl", "export", "--csv", "--output", str(tmp_path / "journal.csv")).returncode == 0
    assert run(ledger, "backup", str(tmp_path / "copy.db")).returncode == 0
    # A reader keeps the WAL files in place so that their mode can be seen.
    import sqlite3

    reader = sqlite3.connect(ledger)
    reader.execute("SELECT count(*) FROM remittances").fetchone()
    created = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    reader.close()
    assert {"practice.db", "practice.db-wal", "practice.db-shm", "practice.db.lock", "practice.db.writers", "journal.csv",
            "copy.db"} <= created.keys()
    assert {name: mode for name, mode in created.items() if mode != 0o600} == {}


def test_no_error_names_a_patient(cli: Cli, tmp_path: Path) -> None:
    clients = tmp_path / "clients.csv"
    clients.write_text(f"client_id,name\nC1,{SENTINEL}\nC2,Other Person\n")
    charges = tmp_path / "charges.csv"
    charges.write_text("charge_id,client_id,service_date,amount,payer\nCH1,C1,2026-01-05,100.00,self_pay\n"
                       "CH2,C1,2026-01-06,80.00,insurance\nCH3,C2,2026-01-07,50.00,self_pay\n")
    payments = tmp_path / "payments.csv"
    payments.write_text("payment_id,client_id,received_date,amount,apply_to,status\n"
                        "P1,C1,2026-01-10,60.00,specific,ready\nP2,C1,2026-01-11,20.00,specific,pending\n"
                        "P3,C1,2026-01-12,30.00,oldest,ready\n")
    for kind, path in (("clients", clients), ("charges", charges), ("payments", payments)):
        assert cli("import", kind, str(path)).exit_code == 0
    conflicting = tmp_path / "conflict.csv"
    conflicting.write_text("payment_id,client_id,received_date,amount,apply_to\nP1,C1,2026-01-10,61.00,specific\n")
    swapped = tmp_path / "swapped.csv"  # an export whose columns came out in another order
    swapped.write_text("payment_id,client_id,received_date,amount,apply_to,method\n"
                       f"P8,C1,{SENTINEL},{SENTINEL},{SENTINEL},{SENTINEL}\n")
    swapped_charges = tmp_path / "swapped-charges.csv"
    swapped_charges.write_text("charge_id,client_id,service_date,amount,payer,description\n"
                               f"CH8,C1,2026-01-05,10.00,Intake for {SENTINEL},self_pay\n")
    swapped_ids = tmp_path / "swapped-ids.csv"
    swapped_ids.write_text("charge_id,client_id,service_date,amount,payer,event_id\n"
                           f"CH9,{SENTINEL},2026-01-05,10.00,self_pay,\nCH10,C1,2026-01-05,10.00,self_pay,{SENTINEL}\n")
    apply_swapped = tmp_path / "apply-swapped.csv"  # apply --file with its columns mixed up
    apply_swapped.write_text(f"payment_id,charge_id,amount\n{SENTINEL},CH1,1.00\nP1,{SENTINEL},1.00\n"
                             f"P1,CH1,{SENTINEL}\n")
    twice = tmp_path / "twice.csv"  # a name in the id column, on two rows
    twice.write_text(f"charge_id,client_id,service_date,amount,payer\n{SENTINEL},C1,2026-01-05,1.00,self_pay\n"
                     f"{SENTINEL},C1,2026-01-05,1.00,self_pay\n")
    bad_rows = tmp_path / "bad.csv"
    bad_rows.write_text(f"client_id,name\nC3,{SENTINEL}\x01\n,{SENTINEL}\n")
    errors = [
        ("apply", "P1", "CH1=200.00"),                 # over the charge's balance
        ("apply", "P1", "CH1=50.00", "CH2=20.00"),     # insurance charge, and over the payment
        ("apply", "P1", "CH3=10.00"),                  # a charge of another client
        ("apply", "P2", "CH1=10.00"),                  # pending payment
        ("apply", "P3", "CH1=10.00"),                  # an oldest payment
        ("apply", "P1", "CH1=1e3"),                    # malformed amount
        ("apply", "P9", "CH1=1.00"),                   # unknown payment
        ("unapply", "999", "--reason", "x"),
        ("reallocate", "999", "CH1=1.00", "--reason", "x"),
        ("payment", "record", "--client", "C1", "--amount", "0", "--date", "2026-01-01", "--apply-to", "oldest"),
        ("payment", "record", "--client", "C1", "--amount", "5", "--date", "2026-02-30", "--apply-to", "oldest"),
        ("payment", "record", "--client", "C1", "--amount", "5", "--date", "2026-01-01", "--apply-to", "event"),
        ("payment", "record", "--client", "C1", "--amount", "5", "--date", "2026-01-01", "--apply-to", "oldest",
         "--id", "P1"),
        ("payment", "void", "P1", "--reason", " "),
        ("payment", "ready", "P9"),
        ("payment", "mode", "P9", "oldest"),
        ("client", "show", "C9"),
        ("import", "payments", str(conflicting)),
        ("import", "clients", str(bad_rows)),
        ("import", "payments", str(swapped)),
        ("import", "charges", str(swapped_charges)),
        ("import", "charges", str(swapped_ids)),
        ("import", "charges", str(tmp_path / "missing.csv")),
        ("import", "charges", str(twice)),
        ("apply", "--file", str(apply_swapped)),
        ("apply", SENTINEL, "CH1=1.00"),
        ("apply", "P1", f"{SENTINEL}=1.00"),
        ("apply", "P1", f"CH1={SENTINEL}"),
        ("apply", "P1", SENTINEL),
        ("apply", "P1", f"{SENTINEL}=1.005"),
        # a name typed where an id goes
        ("payment", "list", "--client", SENTINEL), ("remittances", "list", "--payment", SENTINEL),
        ("client", "show", SENTINEL), ("payment", "show", SENTINEL), ("payment", "void", SENTINEL, "--reason", "x"),
        ("event", "done", SENTINEL), ("audit", "--client", SENTINEL), ("event", "list", "--client", SENTINEL),
        ("payment", "record", "--client", SENTINEL, "--amount", "5", "--date", "2026-01-01", "--apply-to", "oldest"),
        # a name typed where an amount or a date goes
        ("payment", "record", "--client", "C1", "--amount", SENTINEL, "--date", "2026-01-01", "--apply-to", "oldest"),
        ("payment", "record", "--client", "C1", "--amount", "5", "--date", SENTINEL, "--apply-to", "oldest"),
        ("unapply", "1", "--amount", SENTINEL, "--reason", "x"),
        ("event", "add", "--client", "C1", "--date", SENTINEL),
        ("event", "done", "E9"),
        ("audit", "--since", "yesterday"),
    ]
    for args in errors:
        result = cli(*args)
        assert result.exit_code in (2, 3), (args, result.exit_code, result.stderr)
        assert SENTINEL not in result.stdout + result.stderr, args
        assert "Traceback" not in result.stdout + result.stderr, args


def test_a_failed_run_job_records_no_ledger_text(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """job_runs.error is shown by `payalloc jobs`, in cron mail too: a bug's text stays out of it."""
    from payalloc.ledger import job as job_sql

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError(f"unexpected row for {SENTINEL}")

    assert cli("import", "clients", "-", input="client_id,name\nC1,A\n").exit_code == 0
    assert cli("import", "charges", "-", input="charge_id,client_id,service_date,amount,payer\n"
                                                "CH1,C1,2026-01-05,10.00,self_pay\n").exit_code == 0
    assert cli("import", "payments", "-", input="payment_id,client_id,received_date,amount,apply_to\n"
                                                 "P1,C1,2026-01-06,5.00,oldest\n").exit_code == 0
    monkeypatch.setattr(job_sql, "clear_marks", broken)
    result = cli("run-job")
    assert result.exit_code == 1 and SENTINEL not in result.stdout + result.stderr
    monkeypatch.undo()
    runs = cli("jobs", "--json")
    assert '"status": "failed"' in runs.stdout and '"error": "ValueError"' in runs.stdout
    assert all(SENTINEL not in cli("jobs", *fmt).stdout for fmt in ((), ("--json",), ("--csv",)))


def test_jobs_shows_a_run_recorded_by_an_older_payalloc_without_its_text(cli: Cli, conn: sqlite3.Connection) -> None:
    """Runs failed before job_runs.error kept only the kind may hold a bug's text: `jobs` shows the kind."""
    conn.executemany(
        "INSERT INTO job_runs (started_at, finished_at, status, error) VALUES ('2026-01-01T02:00:00Z',"
        " '2026-01-01T02:00:01Z', 'failed', ?)",
        [(f"ValueError: unexpected row for {SENTINEL}",), ("OperationalError: database or disk is full",),
         ("LedgerBusy: the ledger stayed locked by another process for 30 s",)])
    runs = json.loads(cli("jobs", "--json").stdout)
    assert [r["error"] for r in runs] == ["LedgerBusy: the ledger stayed locked by another process for 30 s",
                                          "OperationalError: database or disk is full", "ValueError"]


def test_an_internal_error_does_not_quote_its_text(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug's exception may carry ledger text (here a name); the one line says only its kind."""
    from payalloc.services import listings

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError(f"unexpected row for {SENTINEL}")

    monkeypatch.setattr(listings, "list_clients", broken)
    result = cli("client", "list")
    assert result.exit_code == 1
    assert "internal error (ValueError)" in result.stderr and "--debug" in result.stderr
    assert SENTINEL not in result.stdout + result.stderr
    assert SENTINEL in cli("--debug", "client", "list").stderr  # the traceback, asked for
