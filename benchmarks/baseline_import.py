"""Baseline for `make bench`: a plain stdlib loader of the four CSV files.

csv + sqlite3 executemany, integer cents, one transaction, the same UNIQUE indexes on the
external ids as payalloc's ledger. No validation beyond what int/Decimal conversion does.

    python baseline_import.py DB DIR
"""

import csv
import sqlite3
import sys
from decimal import Decimal

SCHEMA = """
CREATE TABLE clients (id INTEGER PRIMARY KEY, client_id TEXT NOT NULL UNIQUE, name TEXT, responsible_party TEXT);
CREATE TABLE events (id INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, client_id TEXT, scheduled_date TEXT,
                     status TEXT);
CREATE TABLE charges (id INTEGER PRIMARY KEY, charge_id TEXT NOT NULL UNIQUE, client_id TEXT, service_date TEXT,
                      amount_cents INTEGER, payer TEXT, service_code TEXT, description TEXT, event_id TEXT,
                      applied_cents INTEGER NOT NULL DEFAULT 0);
CREATE TABLE payments (id INTEGER PRIMARY KEY, payment_id TEXT NOT NULL UNIQUE, client_id TEXT, received_date TEXT,
                       amount_cents INTEGER, apply_to TEXT, event_id TEXT, method TEXT, reference TEXT,
                       status TEXT, note TEXT, payer_name TEXT, applied_cents INTEGER NOT NULL DEFAULT 0);
CREATE TABLE remittances (id INTEGER PRIMARY KEY, payment_id TEXT, charge_id TEXT, amount_cents INTEGER,
                          rule TEXT);
"""


def cents(text: str) -> int:
    return int(Decimal(text) * 100)


def load(db: str, folder: str) -> None:
    conn = sqlite3.connect(db)
    conn.executescript(SCHEMA)
    with conn:
        with open(f"{folder}/clients.csv", newline="", encoding="utf-8") as f:
            conn.executemany("INSERT INTO clients (client_id, name, responsible_party) VALUES (?, ?, ?)",
                             ((r["client_id"], r["name"], r["responsible_party"]) for r in csv.DictReader(f)))
        with open(f"{folder}/events.csv", newline="", encoding="utf-8") as f:
            conn.executemany("INSERT INTO events (event_id, client_id, scheduled_date, status) VALUES (?, ?, ?, ?)",
                             ((r["event_id"], r["client_id"], r["scheduled_date"], r["status"])
                              for r in csv.DictReader(f)))
        with open(f"{folder}/charges.csv", newline="", encoding="utf-8") as f:
            conn.executemany(
                "INSERT INTO charges (charge_id, client_id, service_date, amount_cents, payer, service_code,"
                " description, event_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                ((r["charge_id"], r["client_id"], r["service_date"], cents(r["amount"]), r["payer"],
                  r["service_code"], r["description"], r["event_id"]) for r in csv.DictReader(f)))
        with open(f"{folder}/payments.csv", newline="", encoding="utf-8") as f:
            conn.executemany(
                "INSERT INTO payments (payment_id, client_id, received_date, amount_cents, apply_to, event_id,"
                " method, reference, status, note, payer_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                ((r["payment_id"], r["client_id"], r["received_date"], cents(r["amount"]), r["apply_to"],
                  r["event_id"], r["method"], r["reference"], r["status"], r["note"], r["payer_name"])
                 for r in csv.DictReader(f)))
    conn.close()


if __name__ == "__main__":
    load(sys.argv[1], sys.argv[2])
