"""kill -9 and a full disk, with real payalloc processes (issue 5, "Crash"; research note T2).

Crash points are statement boundaries, through the test-only hook of ledger/connection.py
(PAYALLOC_TEST_HOOKS=kill, PAYALLOC_TEST_KILL_AT=K: the process SIGKILLs itself when its Kth SQL
statement starts); points inside statements (PAYALLOC_TEST_HOOKS=kill-vm: after about K*1000 SQLite
VM instructions, with part of the transaction already written into the WAL); plus SIGKILLs sent by
the parent after a random delay. After every kill:
`payalloc check` passes, a new BEGIN IMMEDIATE gets the ledger at once (no stuck lock), and the
ledger is exactly what the spec allows —
- run-job: a PREFIX of the uninterrupted run (chunks of clients complete or absent, in client
  order; posting a prefix of the ready remittances), and a re-run gives the uninterrupted result;
- import: the ledger before the command, exactly (whole file or nothing); a re-import gives the
  uninterrupted import's ledger;
- apply / unapply, killed at EVERY statement: the ledger before or after the command, exactly.
A full disk (SQLITE_FULL, simulated with PAYALLOC_TEST_HOOKS=max-pages) must leave the same states
as a kill, with one sentence on stderr and exit 1, and the same command must succeed once there is
room. Timestamps (which come from the clock) are masked in the dumps compared. Random delays use a
seeded generator; the seed is printed so a failure can be replayed (PAYALLOC_CRASH_SEED).
"""

from __future__ import annotations

import bisect
import csv
import errno
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from payalloc.ledger.bulk import ROWS_PER_STATEMENT
from payalloc.ledger.connection import TEST_KILL_VM_STEPS, open_ledger
from payalloc.services.job import run_job
from tests.builders import assert_check_passes
from tests.test_check import build_clean_ledger
from tests.test_job_cli import copy, snapshot

ROOT = Path(__file__).resolve().parent.parent
GEN = ROOT / "benchmarks" / "gen_ledger.py"
DEEP = os.environ.get("PAYALLOC_TEST_PROFILE") == "deep"
SEED = int(os.environ.get("PAYALLOC_CRASH_SEED", str(random.randrange(1 << 30))))
NOW = "2026-11-23T02:00:00Z"
CHUNK_CLIENTS, CHUNK_REMITTANCES = 40, 250  # small chunks: many commits for a kill to fall between
STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
JOB_WORKER = (
    "import sys; from pathlib import Path\n"
    "from payalloc.ledger.connection import open_ledger\n"
    "from payalloc.services.job import run_job\n"
    "path = Path(sys.argv[1])\n"
    f"run_job(open_ledger(path), path, {NOW!r}, clients_per_chunk={CHUNK_CLIENTS},"
    f" remittances_per_chunk={CHUNK_REMITTANCES})\n"
)


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PAYALLOC_STAFF": "crash", **extra}


def kill_env(k: int) -> dict[str, str]:
    return env(PAYALLOC_TEST_HOOKS="kill", PAYALLOC_TEST_KILL_AT=str(k))


def kill_vm_env(k: int) -> dict[str, str]:
    return env(PAYALLOC_TEST_HOOKS="kill-vm", PAYALLOC_TEST_KILL_AT=str(k))


def payalloc(db: Path, *args: str, environ: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "payalloc", "--db", str(db), *args], capture_output=True,
                          text=True, env=environ or env(), timeout=120, check=False)


def dump(db: Path) -> list[str]:
    """The whole ledger as SQL, clock readings and run pids masked."""
    c = sqlite3.connect(db)
    try:
        lines = [STAMP.sub("<time>", line) for line in c.iterdump()]
    finally:
        c.close()
    return lines


def assert_sound_and_free(db: Path, *, by_cli: bool = False) -> None:
    """check passes (the CLI, or its service in-process: the same code), and the ledger is free:
    a BEGIN IMMEDIATE gets it at once."""
    if by_cli:
        checked = payalloc(db, "check")
        assert checked.returncode == 0, checked.stdout + checked.stderr
    else:
        assert_check_passes(db)
    c = sqlite3.connect(db, timeout=5, isolation_level=None)
    try:
        started = time.monotonic()
        c.execute("BEGIN IMMEDIATE")
        c.execute("ROLLBACK")
        assert time.monotonic() - started < 1.0, "the killed process left the ledger locked"
    finally:
        c.close()


def statements(db: Path, action: Callable[[sqlite3.Connection], Any]) -> int:
    """How many statements `action` executes on an open ledger (what the kill hook counts)."""
    conn = open_ledger(db)
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    try:
        action(conn)
    finally:
        conn.close()
    return len(seen)


def spread(total: int, count: int) -> list[int]:
    """About `count` kill points from the first statement to the last, always both ends."""
    if total <= count:
        return list(range(1, total + 1))
    return sorted({1, 2, total - 1, total, *(1 + round(i * (total - 1) / (count - 1)) for i in range(count))})


def uncommitted_wal_frames(db: Path) -> int:
    """Frames at the end of the ledger's WAL after its last commit frame: pages of a transaction that
    was written into the file but never committed (what recovery must ignore). Frames whose salts
    differ from the WAL header's are from an earlier pass over the file, and end the log."""
    wal = Path(f"{db}-wal")
    data = wal.read_bytes() if wal.exists() else b""
    if len(data) < 32:
        return 0
    frame = 24 + int.from_bytes(data[8:12], "big")
    uncommitted = 0
    for offset in range(32, len(data) - frame + 1, frame):
        if data[offset + 8:offset + 16] != data[16:24]:
            break
        commit = int.from_bytes(data[offset + 4:offset + 8], "big") != 0  # db size, in commit frames only
        uncommitted = 0 if commit else uncommitted + 1
    return uncommitted


def parallel(fn: Callable[[int], Any], items: list[int]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(fn, items))


@pytest.fixture(scope="module")
def csvs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("csv")
    subprocess.run([sys.executable, str(GEN), str(out), "--clients", "300", "--payments", "8", "--seed", "11"], check=True,
                   capture_output=True)
    return out


def import_stages(csvs: Path, tmp: Path) -> dict[str, Path]:
    """Import the four files into a new ledger in `tmp` through the CLI, keeping a copy after each
    stage: 'events' (clients and events), 'charges', 'full' (payments too, GL mapped: the job posts)."""
    db = tmp / "ledger.db"
    created = payalloc(db, "init")
    assert created.returncode == 0, created.stderr
    out: dict[str, Path] = {}
    for kind in ("clients", "events", "charges", "payments"):
        if kind == "charges":
            out["events"] = copy(db, tmp / "events.db")
        if kind == "payments":
            out["charges"] = copy(db, tmp / "charges.db")
        done = payalloc(db, "import", kind, str(csvs / f"{kind}.csv"))
        assert done.returncode == 0, done.stderr
    for key, account in (("unapplied_default", "2150"), ("self_pay_ar", "1210")):
        mapped = payalloc(db, "gl", "map", key, account)
        assert mapped.returncode == 0, mapped.stderr
    out["full"] = db
    return out


@pytest.fixture(scope="module")
def stages(csvs: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return import_stages(csvs, tmp_path_factory.mktemp("stages"))


# --- run-job ------------------------------------------------------------------------------------

def by_client(db: Path) -> tuple[dict[str, set[tuple[Any, ...]]], dict[str, str], list[str], list[int]]:
    """Remittances by client (by external ids), payments' modes, clients no longer pending, posted ids."""
    c = sqlite3.connect(db)
    try:
        rems: dict[str, set[tuple[Any, ...]]] = defaultdict(set)
        for row in c.execute(
                "SELECT cl.client_key, p.payment_key, ch.charge_key, r.amount_cents, r.rule FROM remittances r"
                " JOIN clients cl ON cl.id = r.client_id JOIN payments p ON p.id = r.payment_id"
                " JOIN charges ch ON ch.id = r.charge_id"):
            rems[row[0]].add(row[1:])
        modes = dict(c.execute("SELECT payment_key, apply_to FROM payments").fetchall())
        cleared = [r[0] for r in c.execute("SELECT client_key FROM clients WHERE job_pending = 0 ORDER BY id")]
        posted = [r[0] for r in c.execute("SELECT id FROM remittances WHERE status = 'posted' ORDER BY id")]
    finally:
        c.close()
    return rems, modes, cleared, posted


@dataclass
class JobReference:
    """The uninterrupted run-job from `base`, and what a killed run may leave instead."""

    base: Path
    after_db: Path  # the ledger after the uninterrupted run
    expected: dict[str, Any]  # snapshot() after the uninterrupted run
    counts: dict[str, Any]  # its `run-job --json`
    rems: dict[str, set[tuple[Any, ...]]]  # its remittances by client
    modes: dict[str, str]  # payments' apply-to after it
    base_modes: dict[str, str]
    base_cleared: list[str]
    pending: list[str]  # the work list, in the order the job takes it
    client_of_payment: dict[str, str]


def job_reference(base: Path, tmp_path: Path) -> JobReference:
    # The uninterrupted run, by the CLI (default chunks) and by the small-chunk worker: the same result.
    reference = copy(base, tmp_path / "reference.db")
    done = payalloc(reference, "run-job", "--json")
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout)
    assert counts["remittances_created"] > 1000 and counts["remittances_posted"] == counts["remittances_created"]
    expected = snapshot(reference)
    small = copy(base, tmp_path / "small.db")
    worker = subprocess.run([sys.executable, "-c", JOB_WORKER, str(small)], env=env(), capture_output=True,
                            text=True, check=False)
    assert worker.returncode == 0, worker.stderr
    assert snapshot(small) == expected, "chunk sizes must not change what the job does"
    ref_rems, ref_modes, _, _ = by_client(reference)
    base_rems, base_modes, base_cleared, _ = by_client(base)
    assert not base_rems
    c = sqlite3.connect(base)
    pending = [r[0] for r in c.execute("SELECT client_key FROM clients WHERE job_pending = 1 ORDER BY id")]
    client_of_payment = dict(c.execute(
        "SELECT p.payment_key, cl.client_key FROM payments p JOIN clients cl ON cl.id = p.client_id").fetchall())
    c.close()
    assert len(pending) > 5 * CHUNK_CLIENTS
    return JobReference(base, reference, expected, counts, ref_rems, ref_modes, base_modes, base_cleared,
                        pending, client_of_payment)


@pytest.fixture(scope="module")
def job_ref(stages: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> JobReference:
    """The uninterrupted run-job from stages["full"], once per module (its files are only read)."""
    return job_reference(stages["full"], tmp_path_factory.mktemp("job-reference"))


class Killed(NamedTuple):
    """What a killed run-job left: clients done, remittances posted, runs left 'running', and the
    frames it had written to the WAL after the last commit (half a transaction, in the file)."""

    clients_done: int
    posted: int
    stale: int
    uncommitted_frames: int


def killed_job(ref: JobReference, db: Path, k: int, environ: dict[str, str]) -> Killed:
    """Run the small-chunk job on `db` under a kill hook: it must die; then see job_stopped_part_way()."""
    killed = subprocess.run([sys.executable, "-c", JOB_WORKER, str(db)], env=environ, capture_output=True,
                            text=True, check=False)
    assert killed.returncode == -signal.SIGKILL, (k, killed.returncode, killed.stderr)
    torn = uncommitted_wal_frames(db)  # before anything opens the ledger: the last close checkpoints
    assert set(run_statuses(db)) <= {"running"}, f"K={k}: a killed run recorded an end"
    return Killed(*job_stopped_part_way(ref, db, f"K={k}"), torn)


def run_statuses(db: Path) -> list[str]:
    c = sqlite3.connect(db)
    try:
        return [r[0] for r in c.execute("SELECT status FROM job_runs ORDER BY id")]
    finally:
        c.close()


def job_stopped_part_way(ref: JobReference, db: Path, label: str) -> tuple[int, int, int]:
    """After a run-job that stopped part-way (killed, or a write refused): the ledger holds a prefix of
    whole chunks (and of the posting) and is sound and free; a re-run gives the uninterrupted result
    and marks a run left 'running' interrupted. Returns (clients done, remittances posted, runs left
    'running')."""
    rems, modes, cleared, posted = by_client(db)
    # A prefix: the clients done are the first pending ones, each with ALL of its remittances.
    done_clients = [k_ for k_ in ref.pending if k_ not in set(ref.base_cleared) and k_ in set(cleared)]
    assert done_clients == ref.pending[:len(done_clients)], f"{label}: chunks done out of order"
    for client in ref.pending:
        want = ref.rems.get(client, set()) if client in done_clients else set()
        assert rems.get(client, set()) == want, f"{label}: client {client} is half done"
    for payment, mode in modes.items():
        done = ref.client_of_payment[payment] in done_clients
        want_mode = ref.modes[payment] if done else ref.base_modes[payment]
        assert mode == want_mode, f"{label}: payment {payment} converted outside its chunk"
    c = sqlite3.connect(db)
    ready_or_posted = [r[0] for r in c.execute(
        "SELECT id FROM remittances WHERE status IN ('ready', 'posted') ORDER BY id")]
    c.close()
    runs = run_statuses(db)
    stale = runs.count("running")
    assert posted == ready_or_posted[:len(posted)], f"{label}: posting is not a prefix"
    assert_sound_and_free(db)
    rerun = payalloc(db, "run-job", "--json")
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["interrupted_runs"] == stale
    assert snapshot(db) == ref.expected, f"{label}: the re-run differs from the uninterrupted run"
    statuses = run_statuses(db)
    assert statuses == [("interrupted" if s == "running" else s) for s in runs] + ["done"], f"{label}: {statuses}"
    db.unlink()
    return len(done_clients), len(posted), stale


def small_chunk_job(db: Path) -> Callable[[sqlite3.Connection], Any]:
    """What JOB_WORKER does, on an open ledger (to count what the kill hooks count)."""
    return lambda conn: run_job(conn, db, NOW, clients_per_chunk=CHUNK_CLIENTS,
                                remittances_per_chunk=CHUNK_REMITTANCES)


@pytest.mark.slow
def test_run_job_killed_at_statement_boundaries_leaves_a_prefix_and_rerun_completes_it(
    job_ref: JobReference, tmp_path: Path
) -> None:
    ref = job_ref
    counted = copy(ref.base, tmp_path / "count.db")
    total = statements(counted, small_chunk_job(counted))
    total += 2  # open_ledger's two reads, which the hook counts too
    points = spread(total, 200 if DEEP else 50)
    print(f"run-job: {total} statements, {len(points)} kill points")
    results = parallel(lambda k: killed_job(ref, copy(ref.base, tmp_path / f"killed-{k}.db"), k, kill_env(k)),
                       points)
    # The kills fell everywhere: before the run was recorded, between apply chunks, between posting chunks.
    assert any(r.stale == 0 for r in results)
    assert any(0 < r.clients_done < len(ref.pending) for r in results), results
    assert any(0 < r.posted < ref.counts["remittances_posted"] for r in results), results
    last = results[-1]
    assert (last.clients_done, last.posted) == (len(ref.pending), ref.counts["remittances_posted"])


@pytest.mark.slow
def test_run_job_killed_after_random_delays_then_rerun_equals_uninterrupted(
    stages: dict[str, Path], tmp_path: Path
) -> None:
    rnd = random.Random(SEED)
    print(f"PAYALLOC_CRASH_SEED={SEED}")
    reference = copy(stages["full"], tmp_path / "reference.db")
    assert payalloc(reference, "run-job", "-q").returncode == 0
    expected = snapshot(reference)
    for n in range(8 if DEEP else 4):
        db = copy(stages["full"], tmp_path / f"delay-{n}.db")
        proc = subprocess.Popen([sys.executable, "-m", "payalloc", "--db", str(db), "run-job"], env=env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        delay = rnd.uniform(0, 2.0 if n == 0 else 0.6)  # mostly early: a run here lasts under a second
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert_sound_and_free(db, by_cli=True)
        assert payalloc(db, "run-job", "-q").returncode == 0
        assert snapshot(db) == expected, f"killed after {delay:.2f} s (seed {SEED})"
        c = sqlite3.connect(db)
        assert c.execute("SELECT count(*) FROM job_runs WHERE status = 'running'").fetchone()[0] == 0
        c.close()


# --- import -------------------------------------------------------------------------------------

def without_audit(lines: list[str]) -> list[str]:
    return [line for line in lines if not line.startswith('INSERT INTO "audit"')]


@dataclass
class ImportReference:
    """A file, the ledger before its import (`base`), the dumps before and after an uninterrupted import."""

    kind: str
    file: Path
    base: Path
    after_db: Path  # the ledger after the uninterrupted import
    before: list[str]
    after: list[str]

    def count(self, conn: sqlite3.Connection) -> None:
        """The import, on an open ledger (to count what the kill hooks count)."""
        from payalloc.services.imports import import_csv

        with self.file.open("rb") as raw:
            import_csv(conn, self.kind, raw, str(self.file), now=NOW, staff="crash")


def import_reference(kind: str, stages: dict[str, Path], csvs: Path, tmp_path: Path) -> ImportReference:
    base = stages["events" if kind == "charges" else "charges"]
    file = csvs / f"{kind}.csv"
    with file.open(encoding="utf-8", newline="") as text:
        rows = sum(1 for _ in csv.reader(text)) - 1
    assert rows > 2000, "a few thousand rows"
    after_db = copy(base, tmp_path / "after.db")
    done = payalloc(after_db, "import", kind, str(file))
    assert done.returncode == 0, done.stderr
    ref = ImportReference(kind, file, base, after_db, dump(base), dump(after_db))
    assert ref.after != ref.before
    return ref


@pytest.fixture(scope="module")
def import_refs(
    stages: dict[str, Path], csvs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], ImportReference]:
    """import_reference(kind), made once per kind and module (its files are only read)."""
    made: dict[str, ImportReference] = {}

    def get(kind: str) -> ImportReference:
        if kind not in made:
            made[kind] = import_reference(kind, stages, csvs, tmp_path_factory.mktemp(f"import-reference-{kind}"))
        return made[kind]

    return get


def killed_import(ref: ImportReference, db: Path, k: int, environ: dict[str, str]) -> int:
    """Import under a kill hook: it must die leaving the ledger before, exactly, sound and free; then a
    re-import must give the uninterrupted import's ledger. Returns the WAL frames left uncommitted."""
    killed = payalloc(db, "import", ref.kind, str(ref.file), environ=environ)
    assert killed.returncode == -signal.SIGKILL, (k, killed.returncode, killed.stderr)
    torn = uncommitted_wal_frames(db)  # before anything opens the ledger: the last close checkpoints
    assert dump(db) == ref.before, f"K={k}: a killed import left part of the file"
    assert_sound_and_free(db)
    again = payalloc(db, "import", ref.kind, str(ref.file))
    assert again.returncode == 0, again.stderr
    assert dump(db) == ref.after, f"K={k}: the re-import differs from an uninterrupted import"
    db.unlink()
    return torn


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["charges", "payments"])
def test_import_killed_anywhere_leaves_the_ledger_before_and_reimport_completes(
    kind: str, import_refs: Callable[[str], ImportReference], tmp_path: Path
) -> None:
    rnd = random.Random(SEED + len(kind))
    print(f"PAYALLOC_CRASH_SEED={SEED}")
    ref = import_refs(kind)
    before_db, file, before, after = ref.base, ref.file, ref.before, ref.after
    total = statements(copy(before_db, tmp_path / "count.db"), ref.count) + 2
    points = spread(total, 80 if DEEP else 20)
    parallel(lambda k: killed_import(ref, copy(before_db, tmp_path / f"killed-{k}.db"), k, kill_env(k)),
             points)
    # And SIGKILL from outside, at a random moment of a whole import process (timed here: on a loaded
    # machine a fixed range of delays would mostly fall after it ended).
    timed = copy(before_db, tmp_path / "timed.db")
    started = time.monotonic()
    assert payalloc(timed, "import", kind, str(file)).returncode == 0
    lasts = time.monotonic() - started
    for n in range(4 if DEEP else 2):
        db = copy(before_db, tmp_path / f"delay-{n}.db")
        proc = subprocess.Popen([sys.executable, "-m", "payalloc", "--db", str(db), "import", kind, str(file)],
                                env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        delay = rnd.uniform(0.3, 0.95) * lasts  # past the start of Python, before the end
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert dump(db) in (before, after), f"killed after {delay:.2f} s (seed {SEED})"
        assert_sound_and_free(db, by_cli=True)
        assert payalloc(db, "import", kind, str(file)).returncode == 0
        assert without_audit(dump(db)) == without_audit(after)


# --- kills inside a statement (PAYALLOC_TEST_HOOKS=kill-vm) ----------------------------------------
# The hook SIGKILLs at the Kth call of a progress handler that SQLite calls every TEST_KILL_VM_STEPS
# VM instructions: in the middle of a 250-row INSERT of an import, of a remittance insert with its
# triggers, of the posting. It also shrinks the page cache, so that the transaction has already
# written uncommitted pages into the WAL when it dies (the tests check that it had): the next
# opener must ignore them.

def vm_calls(db: Path, action: Callable[[sqlite3.Connection], Any]) -> tuple[int, list[tuple[int, str, int]]]:
    """How many progress-handler calls the kill-vm hook counts while `action` runs on an open ledger;
    and each statement as (calls before it started, its first words, its rows of VALUES), to tell
    in which statement a kill point falls."""
    conn = open_ledger(db)
    calls = [0]
    started: list[tuple[int, str, int]] = []

    def progress() -> int:
        calls[0] += 1
        return 0

    conn.set_progress_handler(progress, TEST_KILL_VM_STEPS)
    conn.set_trace_callback(
        lambda sql: started.append((calls[0], " ".join(sql.split()[:4]), sql.count("), (") + 1)))
    try:
        action(conn)
    finally:
        conn.close()
    return calls[0], started


def running_at(started: list[tuple[int, str, int]], k: int) -> tuple[str, int]:
    """The statement that is running when the progress handler is called for the kth time."""
    before = bisect.bisect_left([calls for calls, _, _ in started], k) - 1
    return started[before][1:]


@pytest.mark.slow
@pytest.mark.parametrize("hooks", [{"PAYALLOC_TEST_HOOKS": "kill-vm"}, {"PAYALLOC_TEST_KILL_AT": "1"}])
def test_one_variable_alone_never_kills(hooks: dict[str, str], stages: dict[str, Path], tmp_path: Path) -> None:
    """A stray variable in a cron environment must not kill the job: the hook needs both."""
    db = copy(stages["full"], tmp_path / "one.db")
    done = payalloc(db, "run-job", "-q", environ=env(**hooks))
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_import_killed_inside_statements_leaves_the_ledger_before_and_reimport_completes(
    import_refs: Callable[[str], ImportReference], tmp_path: Path
) -> None:
    ref = import_refs("charges")
    total, started = vm_calls(copy(ref.base, tmp_path / "count.db"), ref.count)
    points = spread(total, 60 if DEEP else 20)
    print(f"import charges: {total} progress calls, {len(points)} kill points")
    # The file is big enough that most kills fall in the middle of a 250-row INSERT.
    inside = [running_at(started, k) for k in points]
    in_bulk = [what == ("INSERT INTO charges (charge_key,", ROWS_PER_STATEMENT) for what in inside]
    assert sum(in_bulk) > len(points) / 2, inside
    torn = parallel(lambda k: killed_import(ref, copy(ref.base, tmp_path / f"vm-{k}.db"), k, kill_vm_env(k)),
                    points)
    print(f"uncommitted WAL frames left by each kill: {torn}")
    # Most kills left part of the transaction in the WAL (not only in memory): recovery was tested.
    assert sum(n > 0 for n in torn) > len(points) / 2, torn


@pytest.mark.slow
def test_run_job_killed_inside_statements_leaves_a_prefix_and_rerun_completes_it(
    job_ref: JobReference, tmp_path: Path
) -> None:
    ref = job_ref
    counted = copy(ref.base, tmp_path / "count.db")
    total, started = vm_calls(counted, small_chunk_job(counted))
    points = spread(total, 80 if DEEP else 24)
    print(f"run-job: {total} progress calls, {len(points)} kill points")
    inside = {running_at(started, k)[0] for k in points}
    assert {"INSERT INTO remittances (payment_id,", "INSERT INTO journal_lines (batch_id,"} <= inside, inside
    results = parallel(lambda k: killed_job(ref, copy(ref.base, tmp_path / f"vm-{k}.db"), k, kill_vm_env(k)),
                       points)
    print(f"(clients done, posted, stale runs, uncommitted WAL frames) at each kill: {results}")
    # The kills fell in the middle of an apply chunk and of a posting chunk, after chunks of each had
    # committed, and mostly with part of the chunk's transaction already in the WAL.
    assert any(0 < r.clients_done < len(ref.pending) for r in results), results
    assert any(r.clients_done == len(ref.pending) and 0 < r.posted < ref.counts["remittances_posted"]
               for r in results), results
    assert sum(r.uncommitted_frames > 0 for r in results) > len(points) / 2, results


# --- a full disk (PAYALLOC_TEST_HOOKS=max-pages) -------------------------------------------------
# The hook sets PRAGMA max_page_count on the command's connection: a write that needs one more page
# fails with SQLITE_FULL, as when the disk is full. Limits are placed between the ledger's size
# before the command and after the uninterrupted command, so that the write fails part-way.

def max_pages_env(pages: int) -> dict[str, str]:
    return env(PAYALLOC_TEST_HOOKS="max-pages", PAYALLOC_TEST_MAX_PAGES=str(pages))


def page_count(db: Path) -> int:
    c = sqlite3.connect(db)
    try:
        return int(c.execute("PRAGMA page_count").fetchone()[0])
    finally:
        c.close()


def limits(before: Path, after: Path, fractions: tuple[float, ...]) -> list[int]:
    start, end = page_count(before), page_count(after)
    assert end - start > 20, "the command must grow the ledger by more than a few pages"
    return [start + max(1, round((end - start) * f)) for f in fractions]


def assert_says_the_disk_is_full(result: subprocess.CompletedProcess[str], committed: str | None = None) -> None:
    """Exit 1 (not 4: a cron wrapper may retry "busy" quietly; a full disk needs a person) and one
    sentence that says what happened and what to do, no traceback, nothing on stdout. `committed`:
    what a run-job that stopped after committing some chunks says stays."""
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the disk is full"), result.stderr
    if committed is None:
        assert "nothing of it was written" in lines[0] and "run the command again" in lines[0]
    else:
        assert "nothing" not in lines[0] and f"run-job stopped after committing {committed};" in lines[0]
        assert lines[0].endswith("free some space and run it again, it carries on"), lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["charges", "payments"])
def test_import_on_a_full_disk_says_so_writes_nothing_and_succeeds_once_there_is_room(
    kind: str, import_refs: Callable[[str], ImportReference], tmp_path: Path
) -> None:
    ref = import_refs(kind)
    for limit in limits(ref.base, ref.after_db, (0.1, 0.5, 0.9)):
        db = copy(ref.base, tmp_path / f"full-{limit}.db")
        assert_says_the_disk_is_full(payalloc(db, "import", kind, str(ref.file), environ=max_pages_env(limit)))
        assert dump(db) == ref.before, f"limit {limit}: the import left part of the file"
        assert_sound_and_free(db, by_cli=True)
        again = payalloc(db, "import", kind, str(ref.file))  # room again: the limit is per process
        assert again.returncode == 0, again.stderr
        assert dump(db) == ref.after, f"limit {limit}: the import differs from an uninterrupted one"


@pytest.mark.slow
def test_run_job_on_a_full_disk_says_so_keeps_whole_chunks_and_a_rerun_completes(
    job_ref: JobReference, tmp_path: Path
) -> None:
    ref = job_ref
    # The CLI (one chunk of clients here, then one posting chunk): its message and exit status.
    stopped = []
    for limit in limits(ref.base, ref.after_db, (0.25, 0.85)):
        db = copy(ref.base, tmp_path / f"full-{limit}.db")
        result = payalloc(db, "run-job", environ=max_pages_env(limit))
        c = sqlite3.connect(db)
        runs = c.execute("SELECT status, error FROM job_runs").fetchall()
        c.close()
        # `payalloc jobs` tells why the run stopped.
        assert len(runs) == 1 and runs[0][0] == "failed" and "disk is full" in runs[0][1], runs
        stopped.append(job_stopped_part_way(ref, db, f"limit {limit}")[:2])
        done, posted = stopped[-1]
        created = ref.counts["remittances_created"] if done else 0
        assert_says_the_disk_is_full(
            result, f"{done:,} clients ({created:,} remittances created, {posted:,} posted)" if done else None)
    # The limits stopped it in each phase: while applying, and while posting after the apply committed.
    assert stopped == [(0, 0), (len(ref.pending), 0)], stopped
    # Small chunks: the disk fills between committed chunks of both phases; those stay, whole.
    stopped = []
    for limit in limits(ref.base, ref.after_db, (0.3, 0.6, 0.9)):
        db = copy(ref.base, tmp_path / f"small-{limit}.db")
        worker = subprocess.run([sys.executable, "-c", JOB_WORKER, str(db)], env=max_pages_env(limit),
                                capture_output=True, text=True, check=False)
        assert worker.returncode == 1, worker.stderr
        stopped.append(job_stopped_part_way(ref, db, f"limit {limit}, small chunks")[:2])
        # What stays is said by the service itself (errors.LedgerFull), once a chunk has committed.
        said = worker.stderr.splitlines()[-1]
        if stopped[-1] == (0, 0):
            assert said == "sqlite3.OperationalError: database or disk is full", worker.stderr
        else:
            assert said.startswith("payalloc.errors.LedgerFull: the disk is full"), worker.stderr
            assert f"run-job stopped after committing {stopped[-1][0]:,} clients" in said, said
            assert f"{stopped[-1][1]:,} posted)" in said, said
    print(f"(clients done, posted) when the disk filled: {stopped}")
    assert any(0 < done < len(ref.pending) for done, _ in stopped), stopped
    assert any(0 < posted < ref.counts["remittances_posted"] for _, posted in stopped), stopped


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A real file system with no room left (a 400 KiB tmpfs, filled): root only, as mounting is."""
    place = tmp_path / "disk"
    place.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(place)],
                                           capture_output=True, check=False).returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")
    try:
        yield place
    finally:
        subprocess.run(["umount", str(place)], check=True)


def fill(place: Path) -> None:
    with open(place / "fill", "wb", buffering=0) as filler:
        try:
            while filler.write(b"\0" * 4096):
                pass
        except OSError as error:
            assert error.errno == errno.ENOSPC


def test_a_real_full_disk_is_one_sentence_and_exit_1_for_every_command(full_disk: Path, tmp_path: Path) -> None:
    """SQLite cannot even open a ledger on it (no room for the -shm file) and said "disk I/O error",
    exit 3 as if the input were at fault; an export or a backup to it was an internal error."""
    clean = tmp_path / "clean.db"
    build_clean_ledger(clean)
    ledger = copy(clean, full_disk / "ledger.db")
    clients = tmp_path / "clients.csv"
    clients.write_text("client_id,name\nC9,Someone\n")
    fill(full_disk)
    before = ledger.read_bytes()
    refuse_open = (f"error: the disk is full: cannot open ledger {ledger}, SQLite needs room beside it for its -wal"
                   " and -shm files; nothing was written, free some space and run the command again")
    for args in (["apply", "P2", "CH1=10.00"], ["import", "clients", str(clients)], ["run-job"], ["check"],
                 ["backup", str(tmp_path / "copy.db")]):
        done = payalloc(ledger, *args)
        assert (done.returncode, done.stderr.strip()) == (1, refuse_open), args
    for args, what in ((["gl", "export", "--csv", "-o", str(full_disk / "j.csv")], f"write {full_disk / 'j.csv'}"),
                       (["backup", str(full_disk / "b.db")], f"write the backup {full_disk / 'b.db'}")):
        done = payalloc(clean, *args)
        assert (done.returncode, done.stderr.strip()) == (
            1, f"error: the disk is full: cannot {what}; nothing was written, free some space and run the command"
               " again"), args
    assert ledger.read_bytes() == before
    assert {p.name for p in full_disk.iterdir()} <= {"fill", "ledger.db", "ledger.db-wal", "ledger.db-shm"}
    (full_disk / "fill").unlink()  # room again: the same commands go through
    assert payalloc(ledger, "import", "clients", str(clients)).returncode == 0
    assert_sound_and_free(ledger, by_cli=True)


# --- apply and unapply: every statement boundary ---------------------------------------------------

@pytest.fixture
def clerk_ledger(tmp_path: Path) -> Path:
    db = tmp_path / "clerk.db"
    created = payalloc(db, "init")
    assert created.returncode == 0, created.stderr
    files = {
        "clients": "client_id,name\nC1,Ann\n",
        "charges": "charge_id,client_id,service_date,amount,payer\nCH1,C1,2026-01-02,80.00,self_pay\n"
                   "CH2,C1,2026-01-03,60.00,patient_resp\n",
        "payments": "payment_id,client_id,received_date,amount,apply_to\nP1,C1,2026-01-05,120.00,specific\n",
    }
    for kind, text in files.items():
        (tmp_path / f"{kind}.csv").write_text(text)
        done = payalloc(db, "import", kind, str(tmp_path / f"{kind}.csv"))
        assert done.returncode == 0, done.stderr
    for key, account in (("unapplied_default", "2150"), ("self_pay_ar", "1210")):
        mapped = payalloc(db, "gl", "map", key, account)
        assert mapped.returncode == 0, mapped.stderr
    return db


def every_boundary(base: Path, tmp: Path, *args: str) -> int:
    """Kill `payalloc ARGS` at statement 1, 2, ... until it completes; each kill leaves the ledger
    before or after, exactly. Returns how many kill points there were."""
    before = dump(base)
    reference = copy(base, tmp / "reference.db")
    assert payalloc(reference, *args).returncode == 0
    after = dump(reference)
    assert after != before

    def kill_at(k: int) -> bool:
        """True when the command completed before its kth statement."""
        db = copy(base, tmp / f"k{k}.db")
        result = payalloc(db, *args, environ=kill_env(k))
        state = dump(db)
        if result.returncode == 0:
            assert state == after
            return True
        assert result.returncode == -signal.SIGKILL, (k, result.stderr)
        assert state in (before, after), f"{args} killed at statement {k} left a third state"
        assert_sound_and_free(db)
        return False

    k = 0
    while True:  # two kill points at a time (2 cores) until the command runs to its end
        completed = parallel(kill_at, [k + 1, k + 2])
        if any(completed):
            assert completed == [False, True] or completed == [True, True]
            return k + completed.index(True)
        k += 2
        assert k < 500


@pytest.mark.slow
def test_apply_and_unapply_killed_at_every_statement(clerk_ledger: Path, tmp_path: Path) -> None:
    n = every_boundary(clerk_ledger, tmp_path, "apply", "P1", "CH1=80.00", "CH2=25.50")
    print(f"apply: {n} kill points")
    assert n >= 5
    assert payalloc(clerk_ledger, "apply", "P1", "CH1=80.00", "CH2=25.50").returncode == 0
    (tmp_path / "u").mkdir()
    assert every_boundary(clerk_ledger, tmp_path / "u", "unapply", "2", "--reason", "typo", "--amount", "5.50") >= 5
    # A posted remittance: the reversal writes reversing journal lines too.
    assert payalloc(clerk_ledger, "run-job", "-q").returncode == 0
    (tmp_path / "p").mkdir()
    assert every_boundary(clerk_ledger, tmp_path / "p", "unapply", "1", "--reason", "wrong session") >= 5
