"""Baseline for `make bench`: a straightforward APPLY_CLIENT_PAYMENTS job on the baseline loader's DB.

stdlib sqlite3, the same FIFO as payalloc (event payments first, then oldest; payments by
received date then entry; charges by service date then entry), in a plain loop, one transaction.

    python baseline_job.py DB            # run the job
    python baseline_job.py DB --setup    # create the indexes the loop needs (not timed)
"""

import sqlite3
import sys


def setup(db: str) -> None:
    conn = sqlite3.connect(db)
    conn.execute("CREATE INDEX IF NOT EXISTS charges_client ON charges (client_id, service_date, id)")
    conn.execute("CREATE INDEX IF NOT EXISTS charges_event ON charges (event_id)")
    conn.commit()
    conn.close()


def run(db: str) -> int:
    conn = sqlite3.connect(db)
    created = 0
    with conn:
        payments = conn.execute(
            "SELECT id, payment_id, client_id, amount_cents - applied_cents, apply_to, event_id FROM payments"
            " WHERE status = 'ready' AND apply_to IN ('event', 'oldest') AND applied_cents < amount_cents"
            " ORDER BY apply_to = 'oldest', received_date, id"
        ).fetchall()
        for pid, payment_id, client_id, left, apply_to, event_id in payments:
            if apply_to == "event":
                charges = conn.execute(
                    "SELECT id, charge_id, amount_cents - applied_cents FROM charges WHERE event_id = ?"
                    " AND payer <> 'insurance' AND applied_cents < amount_cents ORDER BY service_date, id",
                    (event_id,)).fetchall()
            else:
                charges = conn.execute(
                    "SELECT id, charge_id, amount_cents - applied_cents FROM charges WHERE client_id = ?"
                    " AND payer <> 'insurance' AND applied_cents < amount_cents ORDER BY service_date, id",
                    (client_id,)).fetchall()
            for cid, charge_id, balance in charges:
                if left == 0:
                    break
                amount = min(left, balance)
                conn.execute("INSERT INTO remittances (payment_id, charge_id, amount_cents, rule) VALUES (?, ?, ?, ?)",
                             (payment_id, charge_id, amount, apply_to))
                conn.execute("UPDATE charges SET applied_cents = applied_cents + ? WHERE id = ?", (amount, cid))
                left -= amount
                conn.execute("UPDATE payments SET applied_cents = applied_cents + ? WHERE id = ?", (amount, pid))
                created += 1
    conn.close()
    return created


if __name__ == "__main__":
    if "--setup" in sys.argv:
        setup(sys.argv[1])
    else:
        print(f"{run(sys.argv[1])} remittances")
