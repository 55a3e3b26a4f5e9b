#!/usr/bin/env python3
"""Randomized soak of payalloc: real processes at once, killed at random, money audited after each round.

    .venv/bin/python benchmarks/soak.py [--seconds 120] [--seed S] [--workers 2-4] [--clients 300]
                                        [--workdir DIR] [--keep]
    make soak [SOAK="--seconds 600 --seed 7"]        (default: --seconds 120)

Not part of `make test`. Standard library only (and the `payalloc` command under test).

1. Builds a ledger in a fresh work folder: `payalloc init`, then imports the four CSVs that
   benchmarks/gen_ledger.py writes (--clients, default 300, with the seed).
2. Runs rounds until --seconds have passed. In a round 2 to 4 worker threads (--workers) each run
   real `payalloc` processes one after another, for a few seconds: run-job (sometimes --dry-run
   or --json), payment record (oldest / specific / event, some --pending, mostly with an --id of
   ours), payment ready / void / mode, apply (ids and balances from `client show --json`, some
   sets refused on purpose), unapply (whole or part), reallocate (remittance ids from
   `remittances list --json`), event add / done / delete, re-imports of the generated CSVs and of
   small new CSV batches written each round (and conflicting copies, refused), gl map / show /
   export, listings, check and backup. Any process may be killed at a random moment of its life
   with SIGKILL or SIGTERM.
3. After each round, with nothing running: `payalloc check` must exit 0 and an independent
   accounting computed with plain sqlite3 must hold (see `audit_ledger`): every payment's and
   charge's non-reversed remittances add up to its applied total, at most its amount; insurance
   charges, void and pending payments hold no live remittance; payment, charge and remittance
   have one client; per client, remittances = payments' applied = charges' applied; the journal
   mirrors the posted and reversed remittances and balances. What a command reported done must be
   in the ledger (a recorded payment, an applied or unapplied remittance, a void); an import of a
   batch file is all of it or none of it. Then `run-job` runs alone: after it the job's rules are
   a fixpoint (no ready oldest money next to an open self-pay charge, no event money left next to
   its event's open charge or on a done event, nothing ready to post when both mappings exist),
   and a second run creates nothing. Every exit status must be one the spec allows (0, 3, 4; 5
   never; 2 and 1 never: this script makes no usage errors and there is no full disk), or the
   signal's for a killed process (SIGKILL: -9; SIGTERM: 143, or -15 while Python is still starting);
   stderr must never hold "Traceback", "Exception ignored" or "internal error".

At the first violation it stops, prints the seed, the violation and the last commands, and keeps
the work folder: `commands.jsonl` (every command: round, worker, argv, environment, start and end
times, kill, exit status, output), `round-N-start.db` (the ledger before the failing round) and
`replay-round-N.sh` (that round's commands in start order against a copy of the snapshot).
Exit status: 0 clean, 1 a violation, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import os
import random
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# How a process stopped by the signal it was sent exits (-15: SIGTERM before payalloc handles it, while
# Python starts; a shell shows it as 143). Or as it would have, had it finished first.
KILLED_STATUSES = {"SIGKILL": {-signal.SIGKILL}, "SIGTERM": {143, -signal.SIGTERM}}
STAFF = ["jdoe", "asmith", "mlee"]
ACCOUNTS = ["2150-unapplied", "2151-unapplied-alt", "1210-self-pay-ar", "1211-self-pay-ar-alt"]
CMD_TIMEOUT = 120.0


class Violation(Exception):
    pass


def money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def cents(text: str) -> int:
    whole, _, frac = text.replace(",", "").replace("$", "").partition(".")
    return int(whole) * 100 + int((frac + "00")[:2]) * (1 if not whole.startswith("-") else -1)


def payalloc_command() -> list[str]:
    script = Path(sys.executable).with_name("payalloc")
    return [str(script)] if script.exists() else [sys.executable, "-m", "payalloc"]


@dataclass
class Result:
    seq: int
    kind: str
    argv: list[str]
    rc: int | None = None
    stdout: str = ""
    stderr: str = ""
    killed: str | None = None  # the signal sent, if any

    @property
    def done(self) -> bool:
        return self.rc == 0

    def json(self) -> Any:
        return json.loads(self.stdout) if self.done and self.stdout.strip() else None


@dataclass
class Batch:
    """A CSV file written by the soak with fresh ids: its import is all or nothing."""

    kind: str
    path: Path
    keys: list[str]
    conflict_of: Path | None = None


@dataclass
class Model:
    """What the soak knows of the ledger: the generated data, and ids seen in --json listings."""

    clients: list[str]
    charges: dict[str, tuple[str, str, int]]  # charge_id -> (client_id, payer, amount_cents)
    events: dict[str, str]  # event_id -> client_id
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)  # payment_id -> last listing row
    remittances: dict[int, dict[str, Any]] = field(default_factory=dict)
    event_status: dict[str, str] = field(default_factory=dict)
    batches: list[Batch] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.seed: int = args.seed
        self.rng = random.Random(self.seed)
        self.work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix=f"soak-{self.seed}-"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.db = self.work / "ledger.db"
        self.base = payalloc_command()
        self.seq = 0
        self.seq_lock = threading.Lock()
        self.log_file = open(self.work / "commands.jsonl", "w", encoding="utf-8")  # noqa: SIM115
        self.log_lock = threading.Lock()
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=40)
        self.stats: collections.Counter[tuple[str, str]] = collections.Counter()
        self.kills: collections.Counter[str] = collections.Counter()
        self.durations: dict[str, float] = {}
        self.round = 0
        self.violation: str | None = None
        self.stop = threading.Event()
        # facts to verify after the round: (what, details)
        self.facts: list[tuple[str, Any]] = []
        self.facts_lock = threading.Lock()
        self.started = time.monotonic()

    # ------------------------------------------------------------------ running commands

    def run(self, kind: str, args: list[str], rnd: random.Random, *, worker: str = "main",
            kill: bool = True, stdin: str | None = None, allowed: set[int] | None = None,
            env_extra: dict[str, str] | None = None) -> Result:
        """Run one payalloc process; maybe kill it at a random moment; check its exit status and stderr."""
        with self.seq_lock:
            self.seq += 1
            seq = self.seq
        env = dict(os.environ, PAYALLOC_DB=str(self.db), PAYALLOC_STAFF=rnd.choice(STAFF))
        env.pop("PAYALLOC_BUSY_TIMEOUT_MS", None)
        if env_extra:
            env.update(env_extra)
        elif kill and rnd.random() < 0.08:
            env["PAYALLOC_BUSY_TIMEOUT_MS"] = str(rnd.choice([0, 50, 300, 1000]))
        argv = [*self.base, *args]
        res = Result(seq, kind, args)
        sig: signal.Signals | None = None
        delay = 0.0
        if kill and rnd.random() < self.args.kill_rate:
            sig = signal.SIGKILL if rnd.random() < 0.6 else signal.SIGTERM
            # Most of a short command's life is the interpreter starting: aim at any moment of it,
            # at its last part (where the transaction is), or anywhere in a long tail.
            typical = self.durations.get(kind, 0.5)
            delay = rnd.choice([rnd.uniform(0.0, typical), rnd.uniform(0.6 * typical, 1.1 * typical),
                                rnd.uniform(0.0, 3 * typical)])
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
                                encoding="utf-8", errors="replace")
        try:
            if sig is not None:
                try:
                    out, err = proc.communicate(stdin, timeout=delay)
                except subprocess.TimeoutExpired:
                    proc.send_signal(sig)
                    res.killed = sig.name
                    self.kills[sig.name] += 1
                    out, err = proc.communicate(timeout=CMD_TIMEOUT)
            else:
                out, err = proc.communicate(stdin, timeout=CMD_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            res.rc, res.stdout, res.stderr = proc.returncode, out, err
            self.log(res, t0, worker, env)
            raise Violation(f"command #{seq} ({kind}) did not finish within {CMD_TIMEOUT:.0f} s: "
                            f"{' '.join(args)}") from None
        res.rc, res.stdout, res.stderr = proc.returncode, out, err
        self.log(res, t0, worker, env)
        if not res.killed:  # a running mean of how long this kind of command takes, for aiming kills
            took = time.monotonic() - t0
            self.durations[kind] = 0.8 * self.durations.get(kind, took) + 0.2 * took
        stopped = KILLED_STATUSES[res.killed] if res.killed else set()
        self.stats[(kind, str(res.rc) + ("k" if res.rc in stopped else ""))] += 1
        ok = (allowed if allowed is not None else {0, 3, 4}) | stopped
        if res.rc not in ok:
            raise Violation(f"command #{seq} ({kind}) exited {res.rc}, not one of {sorted(ok)}: "
                            f"{' '.join(args)}\nstderr: {err.strip()[:2000]}")
        for bad in ("Traceback", "internal error", "Exception ignored"):
            if bad in err:
                raise Violation(f"command #{seq} ({kind}) wrote {bad!r} on stderr: {' '.join(args)}\n"
                                f"stderr: {err.strip()[:2000]}")
        return res

    def log(self, res: Result, t0: float, worker: str, env: dict[str, str]) -> None:
        entry = {"seq": res.seq, "round": self.round, "worker": worker, "kind": res.kind, "args": res.argv,
                 "staff": env.get("PAYALLOC_STAFF"), "busy_timeout_ms": env.get("PAYALLOC_BUSY_TIMEOUT_MS"),
                 "start": round(t0 - self.started, 3), "end": round(time.monotonic() - self.started, 3),
                 "killed": res.killed, "rc": res.rc, "stdout": res.stdout[-1500:], "stderr": res.stderr[-1500:]}
        with self.log_lock:
            self.log_file.write(json.dumps(entry) + "\n")
            self.log_file.flush()
            self.recent.append(entry)

    def fact(self, what: str, detail: Any) -> None:
        with self.facts_lock:
            self.facts.append((what, detail))

    # ------------------------------------------------------------------ setup

    def setup(self) -> Model:
        data = self.work / "data"
        subprocess.run([sys.executable, str(HERE / "gen_ledger.py"), str(data), "--clients", str(self.args.clients),
                        "--seed", str(self.seed)], check=True, stdout=subprocess.DEVNULL)
        rnd = random.Random(self.seed)
        self.run("init", ["init"], rnd, kill=False, allowed={0})
        for kind in ("clients", "events", "charges", "payments"):
            self.run("import", ["import", kind, str(data / f"{kind}.csv")], rnd, kill=False, allowed={0})
        with open(data / "clients.csv", encoding="utf-8") as f:
            clients = [row["client_id"] for row in csv.DictReader(f)]
        with open(data / "charges.csv", encoding="utf-8") as f:
            charges = {row["charge_id"]: (row["client_id"], row["payer"], cents(row["amount"]))
                       for row in csv.DictReader(f)}
        with open(data / "events.csv", encoding="utf-8") as f:
            events = {row["event_id"]: row["client_id"] for row in csv.DictReader(f)}
        model = Model(clients, charges, events)
        model.batches = [Batch(kind, data / f"{kind}.csv", []) for kind in ("clients", "events", "charges", "payments")]
        model.batches.append(self.conflicting_copy(data / "charges.csv", "charges"))
        model.batches.append(self.conflicting_copy(data / "payments.csv", "payments"))
        self.refresh(model, rnd)
        return model

    def conflicting_copy(self, path: Path, kind: str) -> Batch:
        """The file with one row's amount changed: an import must refuse it whole (exit 3)."""
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
        header, body = rows[0], rows[1:]
        i = self.rng.randrange(len(body))
        col = header.index("amount")
        body[i][col] = money(cents(body[i][col]) + 1)
        out = self.work / "data" / f"{kind}-conflict.csv"
        with open(out, "w", encoding="utf-8", newline="") as f:
            csv.writer(f).writerows([header, *body])
        return Batch(kind, out, [], conflict_of=path)

    def refresh(self, model: Model, rnd: random.Random, worker: str = "main", kill: bool = False) -> None:
        """Learn ids from the --json listings."""
        res = self.run("list", ["payment", "list", "--json"], rnd, worker=worker, kill=kill)
        self.learn_payments(model, res)
        res = self.run("list", ["remittances", "list", "--json"], rnd, worker=worker, kill=kill)
        self.learn_remittances(model, res)
        res = self.run("list", ["event", "list", "--json"], rnd, worker=worker, kill=kill)
        self.learn_events(model, res)

    def learn_payments(self, model: Model, res: Result) -> None:
        rows = res.json()
        if rows is not None:
            with model.lock:
                for row in rows:
                    model.payments[row["payment_id"]] = row

    def learn_remittances(self, model: Model, res: Result) -> None:
        rows = res.json()
        if rows is not None:
            with model.lock:
                for row in rows:
                    model.remittances[int(row["id"])] = row

    def learn_events(self, model: Model, res: Result) -> None:
        rows = res.json()
        if rows is not None:
            with model.lock:
                for row in rows:
                    model.events.setdefault(row["event_id"], row["client_id"])
                    model.event_status[row["event_id"]] = row["status"]

    # ------------------------------------------------------------------ the actions

    def pick_payment(self, model: Model, rnd: random.Random, **want: str) -> dict[str, Any] | None:
        with model.lock:
            rows = [p for p in model.payments.values() if all(p.get(k) == v for k, v in want.items())]
        return rnd.choice(rows) if rows else None

    def act(self, model: Model, rnd: random.Random, worker: str) -> None:
        actions = [
            (16, self.a_run_job), (14, self.a_record), (4, self.a_ready), (3, self.a_void), (4, self.a_mode),
            (14, self.a_apply), (7, self.a_unapply), (5, self.a_reallocate), (3, self.a_event_add),
            (4, self.a_event_done), (2, self.a_event_delete), (7, self.a_import), (2, self.a_gl),
            (7, self.a_listing), (3, self.a_check), (1, self.a_backup),
        ]
        action = rnd.choices([a for _, a in actions], weights=[w for w, _ in actions])[0]
        action(model, rnd, worker)

    def a_run_job(self, model: Model, rnd: random.Random, worker: str) -> None:
        extra = rnd.choices([[], ["--dry-run"], ["--json"], ["-q"], ["--dry-run", "--json"]], [5, 2, 2, 1, 1])[0]
        res = self.run("run-job" + (" --dry-run" if "--dry-run" in extra else ""), ["run-job", *extra], rnd,
                       worker=worker)
        if "--json" in extra and res.rc in (0, 3, 4) and not res.killed:
            obj = json.loads(res.stdout)
            if not isinstance(obj, dict) or obj.get("refused") is not (res.rc != 0):
                raise Violation(f"run-job --json #{res.seq} printed {res.stdout[:300]!r} with exit {res.rc}")

    def a_record(self, model: Model, rnd: random.Random, worker: str) -> None:
        client = rnd.choice(model.clients)
        mode = rnd.choices(["oldest", "specific", "event"], [4, 4, 3])[0]
        amount = rnd.randint(500, 40000)
        args = ["payment", "record", "--client", client, "--amount",
                rnd.choice([money(amount), f"${amount // 100:,}.{amount % 100:02d}", money(amount).rstrip("0")]),
                "--date", f"2026-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}", "--apply-to", mode]
        event = None
        if mode == "event":
            with model.lock:
                mine = [e for e, c in model.events.items() if c == client]
            if not mine:
                return
            event = rnd.choice(mine)
            args += ["--event", event]
        pending = rnd.random() < 0.2
        if pending:
            args.append("--pending")
        if rnd.random() < 0.5:
            args += ["--method", rnd.choice(["cash", "check", "card", "eft", "other"]),
                     "--reference", str(rnd.randint(1000, 9999))]
        key = None
        if rnd.random() < 0.8:
            key = f"S{self.seed}-{self.round}-{worker}-{rnd.randrange(10**9)}"
            args += ["--id", key]
        res = self.run("payment record", args, rnd, worker=worker)
        if res.done:
            key = key or res.stdout.strip()
        if key:
            self.fact("record", {"seq": res.seq, "key": key, "client": client, "amount": amount,
                                 "rc": res.rc, "killed": res.killed, "pending": pending, "mode": mode})
        if res.done:
            with model.lock:
                model.payments[key] = {"payment_id": key, "client_id": client, "apply_to": mode,
                                       "status": "pending" if pending else "ready",
                                       "unapplied": money(amount), "event_id": event}

    def a_ready(self, model: Model, rnd: random.Random, worker: str) -> None:
        p = self.pick_payment(model, rnd, status="pending")
        if p is not None:
            res = self.run("payment ready", ["payment", "ready", p["payment_id"]], rnd, worker=worker)
            if res.done:
                with model.lock:
                    p["status"] = "ready"

    def a_void(self, model: Model, rnd: random.Random, worker: str) -> None:
        p = self.pick_payment(model, rnd, status=rnd.choice(["ready", "ready", "pending", "void"]))
        if p is not None:
            res = self.run("payment void", ["payment", "void", p["payment_id"], "--reason", "soak: bounced"], rnd,
                           worker=worker)
            if res.done:
                self.fact("void", {"seq": res.seq, "key": p["payment_id"]})
                with model.lock:
                    p["status"] = "void"

    def a_mode(self, model: Model, rnd: random.Random, worker: str) -> None:
        p = self.pick_payment(model, rnd, status="ready")
        if p is not None:
            mode = rnd.choice(["oldest", "specific"])
            res = self.run("payment mode", ["payment", "mode", p["payment_id"], mode], rnd, worker=worker)
            if res.done:
                with model.lock:
                    p["apply_to"] = mode

    def client_show(self, client: str, rnd: random.Random, worker: str) -> dict[str, Any] | None:
        res = self.run("client show", ["client", "show", client, "--json"], rnd, worker=worker,
                       kill=rnd.random() < 0.2)
        shown = res.json()
        return shown if isinstance(shown, dict) else None

    def a_apply(self, model: Model, rnd: random.Random, worker: str) -> None:
        p = self.pick_payment(model, rnd, status="ready", apply_to="specific")
        if p is None:
            return
        shown = self.client_show(p["client_id"], rnd, worker)
        if shown is None:
            return
        pay = next((x for x in shown["payments"] if x["payment_id"] == p["payment_id"]), None)
        if pay is None:
            raise Violation(f"client show {p['client_id']} does not list its payment {p['payment_id']}")
        open_charges = [(c["charge_id"], cents(c["balance"])) for c in shown["open_charges"]
                        if c["allocatable"] and cents(c["balance"]) > 0]
        left = cents(pay["unapplied"])
        expect_refusal = False
        pairs: list[tuple[str, int]] = []
        choice = rnd.random()
        if choice < 0.08:  # an insurance charge: always refused
            ins = [ch for ch, (c, payer, _) in model.charges.items() if c == p["client_id"] and payer == "insurance"]
            if not ins:
                return
            pairs, expect_refusal = [(rnd.choice(ins), 100)], True
        elif choice < 0.16 and open_charges:  # more than the whole charge: always refused
            ch, _ = rnd.choice(open_charges)
            total = model.charges[ch][2] if ch in model.charges else 10**8
            pairs, expect_refusal = [(ch, total + 1)], True
        else:
            if not open_charges or left <= 0:
                return
            rnd.shuffle(open_charges)
            for ch, bal in open_charges[:rnd.randint(1, 3)]:
                if left <= 0:
                    break
                amt = min(bal, left, rnd.choice([bal, rnd.randint(1, max(1, bal)), 100]))
                amt = max(1, amt)
                pairs.append((ch, amt))
                left -= amt
        if not pairs:
            return
        use_file = rnd.random() < 0.2
        if use_file:
            body = "payment_id,charge_id,amount\n" + "".join(f"{p['payment_id']},{ch},{money(a)}\n" for ch, a in pairs)
            args = ["apply", "--file", "-", "--json"]
            res = self.run("apply", args, rnd, worker=worker, stdin=body)
        else:
            args = ["apply", p["payment_id"], *(f"{ch}={money(a)}" for ch, a in pairs), "--json"]
            res = self.run("apply", args, rnd, worker=worker)
        if expect_refusal and res.rc == 0:
            raise Violation(f"apply #{res.seq} should have been refused: {' '.join(args)}")
        if res.done:
            made = res.json()
            self.fact("applied", {"seq": res.seq, "rows": made})
            with model.lock:
                for row in made:
                    model.remittances[int(row["id"])] = row

    def pick_remittance(self, model: Model, rnd: random.Random, worker: str,
                        by_hand: bool = False) -> dict[str, Any] | None:
        if rnd.random() < 0.5:  # a fresh listing of one client, sometimes of everyone
            with model.lock:
                live = [r for r in model.remittances.values() if r["status"] != "reversed"]
            args = ["remittances", "list", "--json"]
            if live and rnd.random() < 0.8:
                args += ["--client", rnd.choice(live)["client_id"]]
            self.learn_remittances(model, self.run("list", args, rnd, worker=worker, kill=rnd.random() < 0.2))
        with model.lock:
            live = [r for r in model.remittances.values() if r["status"] != "reversed"]
            if by_hand and rnd.random() < 0.8:  # mostly of payments the clerk applies: the job's are refused
                live = [r for r in live
                        if model.payments.get(r["payment_id"], {}).get("apply_to") == "specific"] or live
        return rnd.choice(live) if live else None

    def a_unapply(self, model: Model, rnd: random.Random, worker: str) -> None:
        partly = rnd.random() < 0.3
        r = self.pick_remittance(model, rnd, worker, by_hand=partly)
        if r is None:
            return
        args = ["unapply", str(r["id"]), "--reason", "soak: wrong charge", "--json"]
        if partly and cents(r["amount"]) > 1:
            args += ["--amount", money(rnd.randint(1, cents(r["amount"]) - 1))]
        res = self.run("unapply", args, rnd, worker=worker)
        if res.done:
            out = res.json()
            self.fact("unapplied", {"seq": res.seq, "out": out})
            with model.lock:
                r["status"] = "reversed"

    def a_reallocate(self, model: Model, rnd: random.Random, worker: str) -> None:
        r = self.pick_remittance(model, rnd, worker, by_hand=True)
        if r is None:
            return
        shown = self.client_show(r["client_id"], rnd, worker)
        if shown is None:
            return
        open_charges = [(c["charge_id"], cents(c["balance"])) for c in shown["open_charges"]
                        if c["allocatable"] and cents(c["balance"]) > 0 and c["charge_id"] != r["charge_id"]]
        if not open_charges:
            return
        ch, bal = rnd.choice(open_charges)
        amt = min(bal, cents(r["amount"]))
        if rnd.random() < 0.3:
            amt = max(1, amt // 2)
        args = ["reallocate", str(r["id"]), f"{ch}={money(amt)}", "--reason", "soak: moved", "--json"]
        res = self.run("reallocate", args, rnd, worker=worker)
        if res.done:
            out = res.json()
            self.fact("unapplied", {"seq": res.seq, "out": out["unapplied"]})
            self.fact("applied", {"seq": res.seq, "rows": out["applied"]})
            with model.lock:
                r["status"] = "reversed"

    def a_event_add(self, model: Model, rnd: random.Random, worker: str) -> None:
        client = rnd.choice(model.clients)
        args = ["event", "add", "--client", client, "--date", f"2026-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}"]
        res = self.run("event add", args, rnd, worker=worker)
        if res.done:
            with model.lock:
                model.events[res.stdout.strip()] = client

    def pick_event(self, model: Model, rnd: random.Random, *, deleting: bool = False) -> str | None:
        # Not the events of the soak's own CSV batches for a delete: a payments file that names a
        # deleted event is refused, and the soak expects its files to be accepted.
        with model.lock:
            events = [e for e in model.events if model.event_status.get(e, "scheduled") != "deleted"
                      and not (deleting and e.startswith("EV-S"))]
        return rnd.choice(events) if events else None

    def a_event_done(self, model: Model, rnd: random.Random, worker: str) -> None:
        event = self.pick_event(model, rnd)
        if event is not None:
            res = self.run("event done", ["event", "done", event], rnd, worker=worker)
            if res.done:
                with model.lock:
                    model.event_status[event] = "done"

    def a_event_delete(self, model: Model, rnd: random.Random, worker: str) -> None:
        event = self.pick_event(model, rnd, deleting=True)
        if event is not None:
            yes = ["--yes"] if rnd.random() < 0.8 else []
            res = self.run("event delete", ["event", "delete", event, *yes], rnd, worker=worker)
            if res.done:
                with model.lock:
                    model.event_status[event] = "deleted"

    def a_import(self, model: Model, rnd: random.Random, worker: str) -> None:
        with model.lock:
            batch = rnd.choice(model.batches)
        dry = rnd.random() < 0.15
        args = ["import", batch.kind, str(batch.path), "--json", *(["--dry-run"] if dry else [])]
        res = self.run("import" + (" --dry-run" if dry else "") + (" conflict" if batch.conflict_of else ""), args,
                       rnd, worker=worker)
        if batch.conflict_of is not None and res.rc == 0:
            raise Violation(f"import #{res.seq} of a conflicting file was not refused: {' '.join(args)}")
        if res.rc == 3 and batch.conflict_of is None:
            raise Violation(f"import #{res.seq} of a soak-written file was refused: {' '.join(args)}\n"
                            f"{res.stderr[:2000]}")
        if res.done and not batch.keys and batch.conflict_of is None:
            out = res.json()
            if out["inserted"] != 0:  # the generated files were imported at setup: a re-import adds nothing
                raise Violation(f"re-import #{res.seq} of {batch.path.name} inserted {out['inserted']} rows")
        if batch.keys:
            self.fact("import", {"seq": res.seq, "batch": batch.kind, "path": str(batch.path), "keys": batch.keys,
                                 "rc": res.rc, "dry": dry, "killed": res.killed})

    def a_gl(self, model: Model, rnd: random.Random, worker: str) -> None:
        what = rnd.random()
        if what < 0.5:
            key = rnd.choice(["unapplied_default", "self_pay_ar"])
            accounts = ACCOUNTS[:2] if key == "unapplied_default" else ACCOUNTS[2:]
            if rnd.random() < 0.1:
                accounts = ACCOUNTS
            self.run("gl map", ["gl", "map", key, rnd.choice(accounts)], rnd, worker=worker)
        elif what < 0.75:
            self.run("gl show", ["gl", "show", "--json"], rnd, worker=worker)
        else:
            res = self.run("gl export", ["gl", "export", "--json"], rnd, worker=worker)
            lines = res.json()
            if lines is not None:
                debit = sum(cents(x["debit"]) for x in lines)
                credit = sum(cents(x["credit"]) for x in lines)
                if debit != credit:
                    raise Violation(f"gl export #{res.seq}: debits {debit} != credits {credit}")

    def a_listing(self, model: Model, rnd: random.Random, worker: str) -> None:
        what = rnd.randrange(6)
        kill = rnd.random() < 0.3
        if what == 0:
            args = ["payment", "list", "--json"]
            if rnd.random() < 0.5:
                args += ["--client", rnd.choice(model.clients)]
            self.learn_payments(model, self.run("list", args, rnd, worker=worker, kill=kill))
        elif what == 1:
            self.learn_remittances(model, self.run("list", ["remittances", "list", "--json"], rnd, worker=worker,
                                                   kill=kill))
        elif what == 2:
            self.learn_events(model, self.run("list", ["event", "list", "--json"], rnd, worker=worker, kill=kill))
        elif what == 3:
            res = self.run("list", ["unallocated", "--json", *(["--all"] if rnd.random() < 0.3 else [])], rnd,
                           worker=worker, kill=kill)
            res.json()
        elif what == 4:
            self.run("list", ["jobs", "--json"], rnd, worker=worker, kill=kill).json()
        else:
            shown = self.client_show(rnd.choice(model.clients), rnd, worker)
            if shown is not None:
                with model.lock:
                    for row in shown["payments"]:
                        model.payments.setdefault(row["payment_id"], row).update(row)

    def a_check(self, model: Model, rnd: random.Random, worker: str) -> None:
        # a concurrent check reads one snapshot: it must pass while others write
        self.run("check", ["check"], rnd, worker=worker, allowed={0, 4})

    def a_backup(self, model: Model, rnd: random.Random, worker: str) -> None:
        dest = self.work / f"backup-{self.round}-{worker}.db"
        res = self.run("backup", ["backup", str(dest), "--force"], rnd, worker=worker)
        if res.done:
            self.fact("backup", {"seq": res.seq, "path": str(dest)})

    # ------------------------------------------------------------------ new CSV batches

    def new_batches(self, model: Model, rnd: random.Random) -> None:
        """Charges, events and payments with fresh ids for existing clients, written to CSV files."""
        tag = f"{self.seed}-{self.round}"
        folder = self.work / "data"
        clients = rnd.sample(model.clients, min(len(model.clients), rnd.randint(5, 30)))
        events_rows, charge_rows, payment_rows = [], [], []
        for n, client in enumerate(clients):
            ev = f"EV-S{tag}-{n}"
            events_rows.append([ev, client, f"2026-{rnd.randint(1, 12):02d}-15", rnd.choice(["scheduled", "done"])])
            for m in range(rnd.randint(1, 3)):
                charge_rows.append([f"CH-S{tag}-{n}-{m}", client, f"2026-{rnd.randint(1, 12):02d}-10",
                                    money(rnd.randint(1000, 30000)),
                                    rnd.choice(["self_pay", "self_pay", "patient_resp", "insurance"]), "90834",
                                    "soak", ev if rnd.random() < 0.5 else ""])
            for m in range(rnd.randint(0, 2)):
                mode = rnd.choice(["oldest", "specific", "event"])
                payment_rows.append([f"P-S{tag}-{n}-{m}", client, f"2026-{rnd.randint(1, 12):02d}-20",
                                     money(rnd.randint(1000, 30000)), mode, ev if mode == "event" else "",
                                     "check", str(rnd.randint(1000, 9999)),
                                     rnd.choice(["ready", "ready", "pending"])])
        specs = [
            ("events", ["event_id", "client_id", "scheduled_date", "status"], events_rows, 0),
            ("charges", ["charge_id", "client_id", "service_date", "amount", "payer", "service_code", "description",
                         "event_id"], charge_rows, 0),
            ("payments", ["payment_id", "client_id", "received_date", "amount", "apply_to", "event_id", "method",
                          "reference", "status"], payment_rows, 0),
        ]
        # The events file is imported here, first, alone and never killed: the charges and payments
        # files that refer to its events can then be imported whenever a worker picks them.
        for kind, header, rows, key_col in specs:
            path = folder / f"{kind}-{tag}.csv"
            with open(path, "w", encoding="utf-8", newline="") as f:
                csv.writer(f).writerows([header, *rows])
            batch = Batch(kind, path, [r[key_col] for r in rows])
            if kind == "events":
                self.run("import", ["import", "events", str(path)], rnd, kill=False, allowed={0})
                for r in rows:
                    model.events[r[0]] = r[1]
                    model.event_status[r[0]] = r[3]
                batch.keys = []  # landed whole: from now on a re-import
            elif kind == "charges":
                for r in rows:
                    model.charges[r[0]] = (r[1], r[4], cents(r[3]))
            with model.lock:
                model.batches.append(batch)

    # ------------------------------------------------------------------ rounds

    def worker(self, model: Model, name: str, deadline: float, errors: list[BaseException]) -> None:
        rnd = random.Random(f"{self.seed}-{self.round}-{name}")
        try:
            while time.monotonic() < deadline and not self.stop.is_set():
                self.act(model, rnd, name)
        except BaseException as err:  # reported by the round
            errors.append(err)
            self.stop.set()

    def play_round(self, model: Model, seconds: float) -> None:
        self.round += 1
        snapshot = self.work / f"round-{self.round}-start.db"
        src, dst = sqlite3.connect(self.db), sqlite3.connect(snapshot)
        with dst:
            src.backup(dst)
        src.close()
        dst.close()
        prev = self.work / f"round-{self.round - 2}-start.db"
        if prev.exists():
            prev.unlink()
        self.new_batches(model, self.rng)
        workers = self.rng.randint(self.args.min_workers, self.args.max_workers)
        deadline = time.monotonic() + seconds
        errors: list[BaseException] = []
        threads = [threading.Thread(target=self.worker, args=(model, f"w{i}", deadline, errors), daemon=True)
                   for i in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + CMD_TIMEOUT * 3)
            if t.is_alive():
                raise Violation(f"round {self.round}: worker {t.name} still running long after the round")
        if errors:
            err = errors[0]
            if isinstance(err, Violation):
                raise err
            raise Violation(f"round {self.round}: the soak itself failed: {type(err).__name__}: {err}") from err
        self.verify(model)

    def verify(self, model: Model) -> None:
        rnd = random.Random(f"{self.seed}-{self.round}-verify")
        self.run("check", ["check"], rnd, kill=False, allowed={0})
        audit_ledger(self.db)
        self.verify_facts()
        first = self.run("run-job", ["run-job", "--json"], rnd, kill=False, allowed={0})
        second = self.run("run-job", ["run-job", "--json"], rnd, kill=False, allowed={0})
        again = second.json()
        if again["remittances_created"] or again["event_payments_converted"] or again["remittances_posted"]:
            raise Violation(f"round {self.round}: a second quiet run-job still did work: {again} (first {first.stdout})")
        self.run("check", ["check"], rnd, kill=False, allowed={0})
        audit_ledger(self.db, after_job=True)
        self.refresh(model, rnd)

    def verify_facts(self) -> None:
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            for what, d in self.facts:
                where = f"round {self.round}, command #{d['seq']}"
                if what == "record":
                    row = con.execute("SELECT c.client_key, p.amount_cents, p.status FROM payments p"
                                      " JOIN clients c ON c.id = p.client_id WHERE p.payment_key = ?",
                                      (d["key"],)).fetchone()
                    if d["rc"] == 0 and row is None:
                        raise Violation(f"{where}: payment {d['key']} was recorded (exit 0) but is not in the ledger")
                    if d["rc"] in (3, 4) and row is not None:
                        raise Violation(f"{where}: payment {d['key']} was refused (exit {d['rc']}) but is in the"
                                        " ledger")
                    if row is not None and (row[0], row[1]) != (d["client"], d["amount"]):
                        raise Violation(f"{where}: payment {d['key']} is {row}, not {d}")
                elif what == "applied":
                    for r in d["rows"]:
                        row = con.execute(
                            "SELECT p.payment_key, ch.charge_key, r.amount_cents FROM remittances r"
                            " JOIN payments p ON p.id = r.payment_id JOIN charges ch ON ch.id = r.charge_id"
                            " WHERE r.id = ?", (r["id"],)).fetchone()
                        if row != (r["payment_id"], r["charge_id"], cents(r["amount"])):
                            raise Violation(f"{where}: applied remittance {r} is {row} in the ledger")
                elif what == "unapplied":
                    row = con.execute("SELECT status FROM remittances WHERE id = ?",
                                      (d["out"]["reversed_id"],)).fetchone()
                    if row != ("reversed",):
                        raise Violation(f"{where}: unapplied remittance {d['out']} is {row} in the ledger")
                elif what == "void":
                    row = con.execute("SELECT status FROM payments WHERE payment_key = ?", (d["key"],)).fetchone()
                    if row != ("void",):
                        raise Violation(f"{where}: voided payment {d['key']} is {row} in the ledger")
                elif what == "import":
                    table, col = {"charges": ("charges", "charge_key"), "payments": ("payments", "payment_key"),
                                  "events": ("events", "event_key")}[d["batch"]]
                    keys = d["keys"]
                    marks = ",".join("?" * len(keys))
                    n = con.execute(f"SELECT count(*) FROM {table} WHERE {col} IN ({marks})", keys).fetchone()[0]
                    if n not in (0, len(keys)):
                        raise Violation(f"{where}: {n} of the {len(keys)} rows of {d['path']} are in the ledger "
                                        f"(import exit {d['rc']}, killed {d['killed']})")
                    if d["rc"] == 0 and not d["dry"] and n != len(keys):
                        raise Violation(f"{where}: import of {d['path']} exited 0 but {n} of {len(keys)} rows landed")
                elif what == "backup":
                    try:
                        audit_ledger(Path(d["path"]))
                    except Violation as err:
                        raise Violation(f"{where}: the backup {d['path']} breaks an invariant: {err}") from None
        finally:
            con.close()
        self.facts.clear()

    def main(self) -> int:
        print(f"soak: seed {self.seed}, {self.args.seconds:.0f} s, work folder {self.work}", flush=True)
        try:
            model = self.setup()
            end = self.started + self.args.seconds
            while time.monotonic() < end - 2:
                seconds = min(self.rng.uniform(6, 20), max(2.0, end - time.monotonic()))
                self.play_round(model, seconds)
                print(f"  round {self.round}: {seconds:.1f} s, {self.seq} commands so far, clean", flush=True)
        except Violation as err:
            self.violation = str(err)
        finally:
            self.log_file.close()
        self.summary()
        if self.violation:
            self.write_replay()
            print(f"\nVIOLATION (seed {self.seed}, round {self.round}):\n{self.violation}", file=sys.stderr)
            print("\nlast commands:", file=sys.stderr)
            for e in list(self.recent)[-15:]:
                print(f"  #{e['seq']} r{e['round']} {e['worker']} [{e['start']}-{e['end']}] rc={e['rc']}"
                      f"{' killed ' + e['killed'] if e['killed'] else ''}: payalloc {' '.join(e['args'])}",
                      file=sys.stderr)
            print(f"\nreplay: seed {self.seed}; log {self.work / 'commands.jsonl'};"
                  f" {self.work / f'replay-round-{self.round}.sh'}", file=sys.stderr)
            return 1
        if not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)
        return 0

    def summary(self) -> None:
        elapsed = time.monotonic() - self.started
        print(f"\nsoak summary: seed {self.seed}, {self.round} rounds, {self.seq} commands in {elapsed:.0f} s, "
              f"kills: {dict(self.kills) or 'none'}")
        kinds = sorted({k for k, _ in self.stats})
        for kind in kinds:
            codes = ", ".join(f"{code}: {n}" for (k, code), n in sorted(self.stats.items()) if k == kind)
            print(f"  {kind:<24} {codes}")
        print("  (exit statuses; 'k': stopped by the signal it was sent; -15k: by SIGTERM while Python was still"
              " starting, before payalloc handles it, which a shell shows as 143)")
        print("result: " + ("VIOLATION" if self.violation else "clean"), flush=True)

    def write_replay(self) -> None:
        path = self.work / f"replay-round-{self.round}.sh"
        program = " ".join(map(shlex.quote, self.base))
        with open(self.work / "commands.jsonl", encoding="utf-8") as f:
            entries = [json.loads(line) for line in f]
        entries = sorted((e for e in entries if e["round"] == self.round), key=lambda e: e["start"])
        with open(path, "w", encoding="utf-8") as f:
            f.write("#!/bin/sh\n# The failing round's commands in start order (they ran 2-4 at once; kills noted).\n")
            f.write(f"# seed {self.seed}, round {self.round}\nset -u\ncp {self.work}/round-{self.round}-start.db "
                    f"/tmp/replay.db\nexport PAYALLOC_DB=/tmp/replay.db\n")
            for e in entries:
                note = f"  # #{e['seq']} {e['worker']} rc={e['rc']}" + (f" killed {e['killed']}" if e["killed"] else "")
                f.write(f"PAYALLOC_STAFF={e['staff']} {program} {' '.join(map(shlex.quote, e['args']))}{note}\n")
            f.write(f"{program} check\n")
        path.chmod(0o755)


def audit_ledger(db: Path, *, after_job: bool = False) -> None:
    """The soak's own accounting, from the tables with plain SQL (none of payalloc's code)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    problems: list[str] = []

    def rows(sql: str) -> list[tuple[Any, ...]]:
        return con.execute(sql).fetchall()

    def none(what: str, sql: str) -> None:
        """The query names the rows that break a rule: there must be none."""
        bad = rows(sql)
        if bad:
            problems.append(f"{what}: {bad[:5]}{f' (and {len(bad) - 5} more)' if len(bad) > 5 else ''}")

    live = "(SELECT payment_id, charge_id, client_id, amount_cents FROM remittances WHERE status <> 'reversed')"
    checks = [
        ("foreign keys broken", "PRAGMA foreign_key_check"),
        *((f"{table} whose live remittances do not add up (id, amount, applied, live sum)",
           f"SELECT t.id, t.amount_cents, t.applied_cents, coalesce(s.total, 0) FROM {table} t"
           f" LEFT JOIN (SELECT {col} AS id, sum(amount_cents) AS total FROM {live} GROUP BY {col}) s"
           f" ON s.id = t.id WHERE coalesce(s.total, 0) <> t.applied_cents"
           f" OR coalesce(s.total, 0) > t.amount_cents OR t.applied_cents < 0")
          for table, col in (("payments", "payment_id"), ("charges", "charge_id"))),
        ("insurance charges allocated",
         f"SELECT r.* FROM {live} r JOIN charges c ON c.id = r.charge_id WHERE c.payer = 'insurance'"),
        ("void or pending payments with live remittances",
         f"SELECT r.* FROM {live} r JOIN payments p ON p.id = r.payment_id WHERE p.status <> 'ready'"),
        ("remittances across clients",
         "SELECT r.id FROM remittances r JOIN payments p ON p.id = r.payment_id JOIN charges c ON c.id = r.charge_id"
         " WHERE p.client_id <> r.client_id OR c.client_id <> r.client_id"),
        ("clients whose live remittances, payments' applied and charges' applied differ",
         f"SELECT cl.id, coalesce(r.s, 0), coalesce(p.s, 0), coalesce(c.s, 0) FROM clients cl"
         f" LEFT JOIN (SELECT client_id, sum(amount_cents) s FROM {live} GROUP BY client_id) r ON r.client_id = cl.id"
         f" LEFT JOIN (SELECT client_id, sum(applied_cents) s FROM payments GROUP BY client_id) p"
         f" ON p.client_id = cl.id"
         f" LEFT JOIN (SELECT client_id, sum(applied_cents) s FROM charges GROUP BY client_id) c ON c.client_id = cl.id"
         f" WHERE coalesce(r.s, 0) <> coalesce(p.s, 0) OR coalesce(r.s, 0) <> coalesce(c.s, 0)"),
        ("remittances with a bad amount",
         "SELECT id, amount_cents FROM remittances WHERE typeof(amount_cents) <> 'integer' OR amount_cents <= 0"),
        ("unbalanced posting batches",
         "SELECT batch_id, sum(debit_cents), sum(credit_cents) FROM journal_lines GROUP BY batch_id"
         " HAVING sum(debit_cents) <> sum(credit_cents)"),
    ]
    if after_job:  # the job's rules are a fixpoint: nothing is left that a run would apply or post
        checks += [
            ("after run-job: ready oldest payments with money left beside an open self-pay charge",
             "SELECT p.id FROM payments p WHERE p.status = 'ready' AND p.apply_to = 'oldest'"
             " AND p.applied_cents < p.amount_cents AND EXISTS (SELECT 1 FROM charges c"
             " WHERE c.client_id = p.client_id AND c.payer <> 'insurance' AND c.applied_cents < c.amount_cents)"),
            ("after run-job: event payments with money left that the job should have applied or made specific",
             "SELECT p.id, e.status FROM payments p JOIN events e ON e.id = p.event_id"
             " WHERE p.status = 'ready' AND p.apply_to = 'event' AND p.applied_cents < p.amount_cents"
             " AND (e.status <> 'scheduled' OR EXISTS (SELECT 1 FROM charges c WHERE c.event_id = e.id"
             " AND c.payer <> 'insurance' AND c.applied_cents < c.amount_cents))"),
            ("after run-job: remittances still ready with both GL mappings set",
             "SELECT id FROM remittances WHERE status = 'ready' AND (SELECT count(*) FROM gl_mappings) = 2"),
            ("after run-job: runs still recorded running", "SELECT id FROM job_runs WHERE status = 'running'"),
        ]
    try:
        if rows("PRAGMA integrity_check") != [("ok",)]:
            problems.append("integrity_check failed")
        for what, sql in checks:
            none(what, sql)
        # the journal: a posted remittance has its two posting lines; a reversed one that was posted
        # also has their mirror; nothing else has lines
        lines = collections.defaultdict(list)
        for rid, entry, account, debit, credit in rows(
                "SELECT remittance_id, entry, account, debit_cents, credit_cents FROM journal_lines ORDER BY id"):
            lines[rid].append((entry, account, debit, credit))
        for rid, status, amount, batch in rows("SELECT id, status, amount_cents, posted_batch_id FROM remittances"):
            got = lines.pop(rid, [])
            posts = [x for x in got if x[0] == "post"]
            reverses = [x for x in got if x[0] == "reverse"]
            if batch is None:
                ok = not got and status != "posted"
            else:
                mirror = sorted((account, credit, debit) for _, account, debit, credit in posts)
                ok = (len(posts) == 2 and sorted((d, c) for _, _, d, c in posts) == [(0, amount), (amount, 0)]
                      and sorted((a, d, c) for _, a, d, c in reverses) == (mirror if status == "reversed" else []))
            if not ok and len(problems) < 20:
                problems.append(f"remittance {rid} ({status}, {amount}, batch {batch}) has journal lines {got}")
        if lines:
            problems.append(f"journal lines of no remittance: {list(lines)[:5]}")
    finally:
        con.close()
    if problems:
        raise Violation(f"ledger {db}: " + "; ".join(problems))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=120.0, help="how long to soak (default 120)")
    ap.add_argument("--seed", type=int, default=None, help="the seed (default: from the clock, printed)")
    ap.add_argument("--clients", type=int, default=300, help="clients of the generated ledger (default 300)")
    ap.add_argument("--workers", default="2-4", help="processes at once, N or MIN-MAX (default 2-4)")
    ap.add_argument("--kill-rate", type=float, default=0.15, help="share of processes killed (default 0.15)")
    ap.add_argument("--workdir", help="work folder (default: a new temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder of a clean soak")
    args = ap.parse_args()
    if args.seed is None:
        args.seed = int(time.time() * 1000) % 1_000_000
    lo, _, hi = args.workers.partition("-")
    args.min_workers, args.max_workers = int(lo), int(hi or lo)
    if not 1 <= args.min_workers <= args.max_workers:
        ap.error("--workers: N or MIN-MAX with 1 <= MIN <= MAX")
    return Soak(args).main()


if __name__ == "__main__":
    sys.exit(main())
