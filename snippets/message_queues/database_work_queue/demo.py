"""The cases the database-work-queue page shows, and the claims that break.

    python -m snippets.message_queues.database_work_queue.demo CASE

``sqlite`` needs no server; ``naive``, ``skip-locked`` and ``lease`` run against
PostgreSQL in a schema of their own.
"""

from __future__ import annotations

import logging
import sqlite3
import tempfile
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg
    from psycopg.rows import TupleRow

    PgConnection = psycopg.Connection[TupleRow]


import sys

from snippets.message_queues.database_work_queue import (
    claim,
    complete,
    connect,
    create_schema,
    enqueue,
    sqlite_claim,
    sqlite_complete,
    sqlite_connect,
    sqlite_create_schema,
    sqlite_enqueue,
)
from snippets.support import services
from snippets.support.cases import run_cases

__all__: list[str] = []

log = logging.getLogger(__name__)


def _no_pause() -> None:
    """The default for ``between``: no pause between the read and the write."""


# --8<-- [start:naive]
def naive_claim(
    conn: PgConnection, *, between: Callable[[], object] = _no_pause
) -> int | None:
    """Claim the oldest ready job with a SELECT, then an UPDATE. **Broken.**

    Two workers can read the same id before either of them writes, and both
    UPDATEs succeed, so the job runs twice. There is no lease either: a worker
    that dies after claiming leaves its job ``running`` forever.

    Args:
        conn: An autocommit connection.
        between: Called between the SELECT and the UPDATE. The demo passes a
            barrier here to hold every worker inside the race window.

    Returns:
        The claimed job's id, or None when no job is ready.
    """
    row = conn.execute(
        "SELECT id FROM jobs WHERE state = 'ready' ORDER BY id LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    between()  # another worker can read the same row here
    conn.execute(
        "UPDATE jobs SET state = 'running', attempts = attempts + 1 WHERE id = %s",
        (row[0],),
    )
    return int(row[0])


# --8<-- [end:naive]


def sqlite_naive_claim(
    conn: sqlite3.Connection, *, between: Callable[[], object] = _no_pause
) -> int | None:
    """The same broken SELECT-then-UPDATE claim as :func:`naive_claim`, on SQLite."""
    rows = conn.execute(
        "SELECT id FROM jobs WHERE state = 'ready' ORDER BY id LIMIT 1"
    ).fetchall()
    if not rows:
        return None
    between()
    conn.execute(
        "UPDATE jobs SET state = 'running', attempts = attempts + 1 WHERE id = ?",
        (rows[0][0],),
    )
    return int(rows[0][0])


def _race(
    claim_once: Callable[[threading.Barrier], int | None], workers: int
) -> Counter[int]:
    """Run ``claim_once`` on ``workers`` threads that share one barrier."""
    barrier = threading.Barrier(workers, timeout=10)
    with ThreadPoolExecutor(workers) as pool:
        claimed = list(pool.map(claim_once, [barrier] * workers, timeout=30))
    return Counter(job_id for job_id in claimed if job_id is not None)


def _report(title: str, workers: int, counts: Counter[int]) -> list[str]:
    """One summary line, then which jobs were claimed how many times."""

    def jobs(ids: list[int]) -> str:
        return ("job " if len(ids) == 1 else "jobs ") + ", ".join(map(str, ids))

    claims = sum(counts.values())
    lines = [f"{title}: {workers} workers, {claims} claims, {jobs(sorted(counts))}"]
    by_times: dict[int, list[int]] = {}
    for job_id, times in sorted(counts.items()):
        by_times.setdefault(times, []).append(job_id)
    for times, ids in sorted(by_times.items()):
        lines.append(
            f"  claimed {'once' if times == 1 else f'{times} times'}: {jobs(ids)}"
        )
    return lines


def race(dsn: str, *, naive: bool, workers: int = 4) -> list[str]:
    """Let ``workers`` threads claim at the same moment; report who got what.

    The naive claim holds every worker between its SELECT and its UPDATE; the
    ``SKIP LOCKED`` claim starts every worker at once. Empties ``jobs`` first:
    run it against a scratch schema.
    """
    with connect(dsn) as setup:
        create_schema(setup)
        setup.execute("TRUNCATE jobs RESTART IDENTITY")
        enqueue(setup, [f"job {n}" for n in range(1, 2 * workers + 1)])

    def claim_once(barrier: threading.Barrier) -> int | None:
        with connect(dsn) as conn:
            if naive:
                return naive_claim(conn, between=barrier.wait)
            barrier.wait()
            job = claim(conn, lease=timedelta(seconds=30))
            return None if job is None else job.id

    title = "naive SELECT, then UPDATE" if naive else "UPDATE ... SKIP LOCKED"
    return _report(title, workers, _race(claim_once, workers))


def lease_story(dsn: str) -> list[str]:
    """Worker A stalls past its lease, B reclaims the job, A's late completion fails.

    Time is injected (``now=``), so the story needs no sleeping. Empties ``jobs``
    first: run it against a scratch schema.
    """
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    lease = timedelta(seconds=30)

    def at(seconds: int) -> datetime:
        return t0 + timedelta(seconds=seconds)

    with connect(dsn) as a, connect(dsn) as b:
        create_schema(a)
        a.execute("TRUNCATE jobs RESTART IDENTITY")
        (job_id,) = enqueue(a, ["resize image 17"])

        def lease_end() -> str:
            row = a.execute("SELECT lease_until FROM jobs WHERE id = %s", (job_id,))
            until = row.fetchone()
            assert until is not None
            return f"t={int((until[0] - t0).total_seconds())}s"

        job_a = claim(a, lease=lease, now=at(0))
        assert job_a is not None
        lines = [
            f"t=0s   A claims job {job_a.id}: attempt 1, lease until {lease_end()}"
        ]
        early = claim(b, lease=lease, now=at(10))
        lines.append(f"t=10s  B claims {'nothing' if early is None else early.id}")
        job_b = claim(b, lease=lease, now=at(31))
        assert job_b is not None
        lines.append(
            f"t=31s  B claims job {job_b.id}: attempt {job_b.attempts},"
            f" lease until {lease_end()}"
        )
        verdict = {True: "accepted", False: "rejected (lease lost)"}
        lines.append(
            f"t=32s  A completes job {job_a.id}: {verdict[complete(a, job_a)]}"
        )
        lines.append(
            f"t=33s  B completes job {job_b.id}: {verdict[complete(b, job_b)]}"
        )
        row = a.execute("SELECT state, attempts FROM jobs WHERE id = %s", (job_id,))
        state, attempts = row.fetchone() or ("missing", 0)
        lines.append(f"end    job {job_id}: state={state}, attempts={attempts}")
    return lines


def sqlite_demo(path: str | Path, *, workers: int = 4) -> list[str]:
    """The race and the lease on SQLite: needs no server, only a file path."""

    def claim_once(naive: bool) -> Callable[[threading.Barrier], int | None]:
        def run(barrier: threading.Barrier) -> int | None:
            with closing(sqlite_connect(path)) as conn:
                if naive:
                    return sqlite_naive_claim(conn, between=barrier.wait)
                barrier.wait()
                job = sqlite_claim(conn, lease=30.0)
                return None if job is None else job.id

        return run

    lines: list[str] = []
    for naive, title in [
        (True, "naive SELECT, then UPDATE"),
        (False, "BEGIN IMMEDIATE + UPDATE ... RETURNING"),
    ]:
        with closing(sqlite_connect(path)) as conn:
            sqlite_create_schema(conn)
            conn.execute("DELETE FROM jobs")
            sqlite_enqueue(conn, [f"job {n}" for n in range(1, 2 * workers + 1)])
        lines += _report(title, workers, _race(claim_once(naive), workers))

    with closing(sqlite_connect(path)) as a, closing(sqlite_connect(path)) as b:
        a.execute("DELETE FROM jobs")
        sqlite_enqueue(a, ["resize image 17"])
        job_a = sqlite_claim(a, lease=30.0, now=0.0)
        job_b = sqlite_claim(b, lease=30.0, now=31.0)
        assert job_a is not None and job_b is not None
        lines.append(
            f"lease: A claims job {job_a.id} at t=0s, B reclaims it at t=31s"
            f" (attempt {job_b.attempts})"
        )
        verdict = {True: "accepted", False: "rejected (lease lost)"}
        lines.append(
            f"  A completes job {job_a.id}: {verdict[sqlite_complete(a, job_a)]}"
        )
        lines.append(
            f"  B completes job {job_b.id}: {verdict[sqlite_complete(b, job_b)]}"
        )
    return lines


def show_sqlite() -> list[str]:
    with tempfile.TemporaryDirectory() as scratch:
        return sqlite_demo(Path(scratch) / "queue.db")


def show_race(naive: bool) -> list[str]:
    with services.postgres() as pg:
        return race(pg.dsn, naive=naive)


def show_lease() -> list[str]:
    with services.postgres() as pg:
        return lease_story(pg.dsn)


if __name__ == "__main__":
    sys.exit(
        run_cases(
            {
                "sqlite": show_sqlite,
                "naive": lambda: show_race(True),
                "skip-locked": lambda: show_race(False),
                "lease": show_lease,
            }
        )
    )
