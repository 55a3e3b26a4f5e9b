#!/usr/bin/env python3
# Vendored from ../shared/bench/gen_ledger.py (unchanged) so tests and `make bench` run on a bare clone.
"""Generate a synthetic, deterministic ledger as the four CSV import files.

    python3 gen_ledger.py OUT_DIR [--clients N] [--charges K] [--payments P] [--seed S]

writes OUT_DIR/{clients,events,charges,payments}.csv in the formats of
../spec/PRODUCT.md. K and P are the mean charges and payments per client.
The same arguments always give the same bytes. Only the standard library is used.
"""
import argparse
import csv
import datetime as dt
import os
import random

PAYERS = ["self_pay"] * 60 + ["patient_resp"] * 15 + ["insurance"] * 25
APPLY_TO = ["oldest"] * 55 + ["specific"] * 30 + ["event"] * 15
METHODS = ["cash", "check", "card", "eft", "other"]
CODES = ["90791", "90832", "90834", "90837", "90846", "90847", "90853", "H0004", "H2019"]
NOTES = ["", "", "", "paid at front desk", 'memo: "Oct, Nov"', "cheque #, résumé 50%", "line1\nline2"]
START = dt.date(2025, 1, 1)


def money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--charges", type=float, default=10.0, help="mean charges per client")
    ap.add_argument("--payments", type=float, default=4.0, help="mean payments per client")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    os.makedirs(a.out, exist_ok=True)
    files = {k: open(os.path.join(a.out, f"{k}.csv"), "w", newline="", encoding="utf-8")
             for k in ("clients", "events", "charges", "payments")}
    w = {k: csv.writer(f) for k, f in files.items()}
    w["clients"].writerow(["client_id", "name", "responsible_party"])
    w["events"].writerow(["event_id", "client_id", "scheduled_date", "status"])
    w["charges"].writerow(["charge_id", "client_id", "service_date", "amount", "payer",
                           "service_code", "description", "event_id"])
    w["payments"].writerow(["payment_id", "client_id", "received_date", "amount", "apply_to",
                            "event_id", "method", "reference", "status", "note", "payer_name"])
    ch_n = ev_n = pay_n = 0
    for c in range(1, a.clients + 1):
        cid = f"C{c:07d}"
        name = f"Client {c}"
        w["clients"].writerow([cid, name, rnd.choice(["", "", f"Guardian of {c}"])])
        # few distinct dates per client so that same-day ties are common
        days = sorted(rnd.sample(range(0, 660), 8))
        events = []
        for _ in range(rnd.randint(0, int(2 * a.charges))):
            ch_n += 1
            d = START + dt.timedelta(days=rnd.choice(days))
            ev = ""
            if rnd.random() < 0.3:
                ev_n += 1
                ev = f"E{ev_n:08d}"
                events.append(ev)
                w["events"].writerow([ev, cid, d.isoformat(), rnd.choice(["done", "done", "scheduled"])])
            w["charges"].writerow([f"CH{ch_n:08d}", cid, d.isoformat(), money(rnd.randint(2000, 30000)),
                                   rnd.choice(PAYERS), rnd.choice(CODES), "session", ev])
        for _ in range(rnd.randint(0, 2)):  # upcoming events, no charge yet
            ev_n += 1
            ev = f"E{ev_n:08d}"
            events.append(ev)
            w["events"].writerow([ev, cid, (START + dt.timedelta(days=rnd.randint(660, 700))).isoformat(), "scheduled"])
        for _ in range(rnd.randint(0, int(2 * a.payments))):
            pay_n += 1
            mode = rnd.choice(APPLY_TO)
            ev = rnd.choice(events) if mode == "event" and events else ""
            if mode == "event" and not ev:
                mode = "oldest"
            d = START + dt.timedelta(days=rnd.randint(0, 700))
            w["payments"].writerow([f"P{pay_n:08d}", cid, d.isoformat(), money(rnd.randint(1000, 40000)), mode, ev,
                                    rnd.choice(METHODS), str(rnd.randint(1000, 9999)),
                                    "ready" if rnd.random() < 0.9 else "pending", rnd.choice(NOTES), ""])
    for f in files.values():
        f.close()
    print(f"{a.clients} clients, {ev_n} events, {ch_n} charges, {pay_n} payments -> {a.out}")


if __name__ == "__main__":
    main()
