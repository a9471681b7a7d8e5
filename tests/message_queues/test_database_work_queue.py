"""Database-backed work queue: the double claim, the lost job and the fence, for real.

PostgreSQL runs through the ``postgres`` fixture (a private schema on the search
path); SQLite runs on a file in ``tmp_path``. Workers are threads with their own
connections, or separate processes; a crash is a SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from snippets.message_queues import database_work_queue as dbq
from snippets.message_queues.database_work_queue import demo
from tests.conftest import Postgres
from tests.processes import read_line

ROOT = Path(__file__).resolve().parents[2]
JOBS, WORKERS, ROUNDS = 200, 4, 5
LEASE = timedelta(seconds=30)


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #


@pytest.fixture
def pg(postgres: Postgres) -> Iterator[dbq.PgConnection]:
    """An autocommit connection to the test's schema, with the jobs table."""
    with dbq.connect(postgres.dsn) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        print(f"\nPostgreSQL server {row[0] if row else '?'}")
        dbq.create_schema(conn)
        yield conn


def pg_drain(dsn: str, *, naive: bool) -> list[int]:
    """Four workers start behind a barrier and claim until nothing is left."""
    barrier = threading.Barrier(WORKERS, timeout=10)

    def worker(_: int) -> list[int]:
        claimed: list[int] = []
        with dbq.connect(dsn) as conn:
            barrier.wait()
            while True:
                if naive:
                    job_id = demo.naive_claim(conn)
                    if job_id is None:
                        return claimed
                    conn.execute(
                        "UPDATE jobs SET state = 'done' WHERE id = %s", (job_id,)
                    )
                    claimed.append(job_id)
                    continue
                job = dbq.claim(conn, lease=LEASE)
                if job is None:
                    return claimed
                assert dbq.complete(conn, job)
                claimed.append(job.id)

    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(worker, range(WORKERS), timeout=60))
    return [job_id for claimed in results for job_id in claimed]


def reset_pg(conn: dbq.PgConnection, jobs: int) -> None:
    conn.execute("TRUNCATE jobs RESTART IDENTITY")
    dbq.enqueue(conn, [f"job {n}" for n in range(jobs)])


def left_behind_pg(conn: dbq.PgConnection) -> int:
    row = conn.execute("SELECT count(*) FROM jobs WHERE state <> 'done'").fetchone()
    assert row is not None
    return int(row[0])


CHILD = "snippets.support.message_queues_dbq_child"


def spawn(*args: str) -> subprocess.Popen[str]:
    """Start the worker child from the repository root, with pipes."""
    return subprocess.Popen(
        [sys.executable, "-m", CHILD, *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def sigkill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL


def reap(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            pipe.close()


# --------------------------------------------------------------------------- #
# PostgreSQL: the double claim
# --------------------------------------------------------------------------- #


def test_naive_select_then_update_claims_jobs_twice(
    postgres: Postgres, pg: dbq.PgConnection
) -> None:
    duplicates = []
    for _ in range(ROUNDS):
        reset_pg(pg, JOBS)
        claimed = pg_drain(postgres.dsn, naive=True)
        assert set(claimed) == set(range(1, JOBS + 1))
        duplicates.append(len(claimed) - len(set(claimed)))
        assert left_behind_pg(pg) == 0
    print(f"naive: {JOBS} jobs x {ROUNDS} rounds, claimed twice or more: {duplicates}")
    assert sum(duplicates) > 0


def test_skip_locked_claims_every_job_exactly_once(
    postgres: Postgres, pg: dbq.PgConnection
) -> None:
    for _ in range(ROUNDS):
        reset_pg(pg, JOBS)
        claimed = pg_drain(postgres.dsn, naive=False)
        counts = Counter(claimed)
        assert len(claimed) == JOBS
        assert sorted(counts) == list(range(1, JOBS + 1))
        assert max(counts.values()) == 1
        assert left_behind_pg(pg) == 0
    print(f"SKIP LOCKED: {JOBS} jobs x {ROUNDS} rounds, each claimed exactly once")


def test_race_demo_reports_one_job_four_times_then_four_jobs(
    postgres: Postgres, pg: dbq.PgConnection
) -> None:
    naive = demo.race(postgres.dsn, naive=True)
    fixed = demo.race(postgres.dsn, naive=False)
    assert naive[0].endswith("4 claims, job 1")
    assert fixed[0].endswith("4 claims, jobs 1, 2, 3, 4")


# --------------------------------------------------------------------------- #
# PostgreSQL: a worker killed with SIGKILL after claiming
# --------------------------------------------------------------------------- #


def test_killed_worker_strands_its_job_without_a_lease(
    postgres: Postgres, pg: dbq.PgConnection
) -> None:
    dbq.enqueue(pg, ["only job"])
    proc = spawn("claim", postgres.dsn, "naive")
    try:
        assert read_line(proc, timeout=20) == "1"
        sigkill(proc)
    finally:
        reap(proc)
    assert demo.naive_claim(pg) is None  # nobody can ever take it again
    row = pg.execute("SELECT state, attempts FROM jobs WHERE id = 1").fetchone()
    assert row == ("running", 1)


def test_killed_worker_job_is_reclaimed_after_its_lease(
    postgres: Postgres, pg: dbq.PgConnection
) -> None:
    dbq.enqueue(pg, ["only job"])
    proc = spawn("claim", postgres.dsn, "lease")
    try:
        job_id, dead_token = read_line(proc, timeout=20).split()
        sigkill(proc)
    finally:
        reap(proc)
    assert dbq.claim(pg, lease=LEASE) is None  # the lease still runs
    row = pg.execute("SELECT state, attempts, lease_until FROM jobs").fetchone()
    assert row is not None
    state, attempts, lease_until = row
    assert (state, attempts) == ("running", 1)

    later: datetime = lease_until + timedelta(seconds=1)
    job = dbq.claim(pg, lease=LEASE, now=later)
    assert job is not None
    assert (job.id, job.attempts) == (int(job_id), 2)
    assert job.token != dead_token
    stale = dbq.Job(id=job.id, payload=job.payload, attempts=1, token=dead_token)
    assert not dbq.complete(pg, stale)
    assert dbq.complete(pg, job)
    assert left_behind_pg(pg) == 0


# --------------------------------------------------------------------------- #
# PostgreSQL: the fence and the lease
# --------------------------------------------------------------------------- #


def test_late_completion_is_rejected(postgres: Postgres, pg: dbq.PgConnection) -> None:
    lines = demo.lease_story(postgres.dsn)
    assert "B claims nothing" in lines[1]
    assert lines[3].endswith("rejected (lease lost)")
    assert lines[4].endswith("accepted")
    row = pg.execute("SELECT state, attempts FROM jobs").fetchone()
    assert row == ("done", 2)


def test_renew_keeps_the_job_and_a_lost_lease_cannot_renew(
    pg: dbq.PgConnection,
) -> None:
    t0 = datetime.fromisoformat("2026-01-01T00:00:00+00:00")

    def at(seconds: int) -> datetime:
        return t0 + timedelta(seconds=seconds)

    dbq.enqueue(pg, ["long job"])
    job = dbq.claim(pg, lease=LEASE, now=at(0))
    assert job is not None
    assert dbq.renew(pg, job, lease=LEASE, now=at(20))  # lease now ends at t=50
    assert dbq.claim(pg, lease=LEASE, now=at(31)) is None
    thief = dbq.claim(pg, lease=LEASE, now=at(51))
    assert thief is not None
    assert thief.id == job.id
    assert not dbq.renew(pg, job, lease=LEASE, now=at(52))
    assert not dbq.bury(pg, job)
    assert dbq.bury(pg, thief)
    row = pg.execute("SELECT state, attempts FROM jobs").fetchone()
    assert row == ("dead", 2)


def test_claim_rejects_a_non_positive_lease(pg: dbq.PgConnection) -> None:
    with pytest.raises(ValueError, match="lease must be positive"):
        dbq.claim(pg, lease=timedelta(0))


def test_worker_loop_finishes_good_jobs_and_buries_a_poison_one(
    postgres: Postgres, pg: dbq.PgConnection
) -> None:
    good = [f"good {n}" for n in range(20)]
    dbq.enqueue(pg, [*good, "poison"])
    handled: Counter[str] = Counter()
    lock = threading.Lock()

    def handle(job: dbq.Job) -> None:
        with lock:
            handled[job.payload] += 1
        if job.payload == "poison":
            raise RuntimeError("cannot process this payload")

    stop = threading.Event()

    def run(_: int) -> Counter[str]:
        with dbq.connect(postgres.dsn) as conn:
            return dbq.work(
                conn,
                handle,
                stop=stop,
                lease=timedelta(milliseconds=300),
                max_attempts=2,
                idle=0.05,
            )

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(run, n) for n in range(2)]
        try:
            finished = wait_for(
                lambda: (
                    pg.execute(
                        "SELECT count(*) FILTER (WHERE state = 'done'),"
                        " count(*) FILTER (WHERE state = 'dead') FROM jobs"
                    ).fetchone()
                    == (len(good), 1)
                ),
                timeout=15,
            )
        finally:
            stop.set()
        outcomes = sum((f.result(timeout=10) for f in futures), Counter[str]())
    assert finished
    assert outcomes == Counter(done=len(good), failed=2, buried=1)
    assert all(handled[payload] == 1 for payload in good)
    assert handled["poison"] == 2  # run twice, then buried instead of a third run


def wait_for(condition: Callable[[], bool], *, timeout: float) -> bool:
    """Check ``condition`` every 50 ms until it holds or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while time.monotonic() < deadline:
        if condition():
            return True
        pause.wait(0.05)
    return condition()


# --------------------------------------------------------------------------- #
# SQLite: the embedded default
# --------------------------------------------------------------------------- #


@pytest.fixture
def queue_db(tmp_path: Path) -> Path:
    """A fresh queue database file in WAL mode, with the jobs table."""
    print(f"\nSQLite library {sqlite3.sqlite_version}, Python {sys.version.split()[0]}")
    path = tmp_path / "queue.db"
    with closing(dbq.sqlite_connect(path)) as conn:
        dbq.sqlite_create_schema(conn)
    return path


def sqlite_drain(path: Path, *, naive: bool) -> list[int]:
    """Four threads, one connection each, claim behind a barrier until empty."""
    with closing(dbq.sqlite_connect(path)) as conn:
        conn.execute("DELETE FROM jobs")
        dbq.sqlite_enqueue(conn, [f"job {n}" for n in range(JOBS)])
    barrier = threading.Barrier(WORKERS, timeout=10)

    def worker(_: int) -> list[int]:
        claimed: list[int] = []
        with closing(dbq.sqlite_connect(path)) as conn:
            barrier.wait()
            while True:
                if naive:
                    job_id = demo.sqlite_naive_claim(conn)
                    if job_id is None:
                        return claimed
                    conn.execute(
                        "UPDATE jobs SET state = 'done' WHERE id = ?", (job_id,)
                    )
                    claimed.append(job_id)
                    continue
                job = dbq.sqlite_claim(conn, lease=30.0)
                if job is None:
                    return claimed
                assert dbq.sqlite_complete(conn, job)
                claimed.append(job.id)

    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(worker, range(WORKERS), timeout=60))
    return [job_id for claimed in results for job_id in claimed]


def test_sqlite_supports_returning() -> None:
    assert sqlite3.sqlite_version_info >= (3, 35, 0), sqlite3.sqlite_version


def test_sqlite_naive_claim_claims_jobs_twice(queue_db: Path) -> None:
    duplicates = []
    for _ in range(ROUNDS):
        claimed = sqlite_drain(queue_db, naive=True)
        assert set(claimed) == set(range(1, JOBS + 1))
        duplicates.append(len(claimed) - len(set(claimed)))
    print(f"SQLite naive: claimed twice or more per round: {duplicates}")
    assert sum(duplicates) > 0


def test_sqlite_begin_immediate_claims_once_across_threads(queue_db: Path) -> None:
    for _ in range(ROUNDS):
        claimed = sqlite_drain(queue_db, naive=False)
        assert sorted(claimed) == list(range(1, JOBS + 1))
    with closing(dbq.sqlite_connect(queue_db)) as conn:
        (left,) = conn.execute(
            "SELECT count(*) FROM jobs WHERE state <> 'done'"
        ).fetchone()
    assert left == 0


def test_sqlite_begin_immediate_claims_once_across_processes(queue_db: Path) -> None:
    with closing(dbq.sqlite_connect(queue_db)) as conn:
        dbq.sqlite_enqueue(conn, [f"job {n}" for n in range(JOBS)])
    procs = [spawn("sqlite-drain", str(queue_db)) for _ in range(WORKERS)]
    try:
        for proc in procs:
            assert read_line(proc, timeout=20) == "ready"
        for proc in procs:  # every process is connected: start them together
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        claimed = []
        for proc in procs:
            claimed += json.loads(read_line(proc, timeout=30))
            assert proc.wait(timeout=10) == 0
    finally:
        for proc in procs:
            reap(proc)
    print(f"SQLite, {WORKERS} processes: {len(claimed)} claims of {JOBS} jobs")
    assert sorted(claimed) == list(range(1, JOBS + 1))


def test_sqlite_lease_and_fence(queue_db: Path) -> None:
    with (
        closing(dbq.sqlite_connect(queue_db)) as a,
        closing(dbq.sqlite_connect(queue_db)) as b,
    ):
        dbq.sqlite_enqueue(a, ["only job"])
        job_a = dbq.sqlite_claim(a, lease=30.0, now=100.0)
        assert job_a is not None
        assert dbq.sqlite_claim(b, lease=30.0, now=129.0) is None
        job_b = dbq.sqlite_claim(b, lease=30.0, now=130.0)
        assert job_b is not None
        assert (job_b.id, job_b.attempts) == (job_a.id, 2)
        assert not dbq.sqlite_complete(a, job_a)
        assert dbq.sqlite_complete(b, job_b)
        assert dbq.sqlite_claim(a, lease=30.0, now=1000.0) is None
        with pytest.raises(ValueError, match="lease must be positive"):
            dbq.sqlite_claim(a, lease=0)


def test_sqlite_connect_refuses_a_database_without_wal() -> None:
    with pytest.raises(RuntimeError, match="WAL is required"):
        dbq.sqlite_connect(":memory:")


def test_sqlite_demo_reports_the_double_claim_and_the_fix(tmp_path: Path) -> None:
    lines = demo.sqlite_demo(tmp_path / "demo.db")
    assert lines[0].endswith("4 claims, job 1")
    assert lines[2].endswith("4 claims, jobs 1, 2, 3, 4")
