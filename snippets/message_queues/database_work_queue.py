"""Database-backed work queue: claim with ``FOR UPDATE SKIP LOCKED`` and a lease.

PostgreSQL (through psycopg 3) is the production path; SQLite is the embedded
default that runs with no server. Both claim a job in one statement, give the
worker a lease (a token and an expiry time), let another worker take the job
back once the lease has expired, and accept a completion only from the worker
that still holds the lease.

psycopg is imported only when you connect to PostgreSQL, so the SQLite half runs
on the standard library alone: ``python -m snippets.message_queues.database_work_queue``
prints the SQLite demo.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import psycopg
    from psycopg.rows import TupleRow

    PgConnection = psycopg.Connection[TupleRow]

log = logging.getLogger(__name__)


def _no_pause() -> None:
    """The default for ``between``: no pause between the read and the write."""


# --8<-- [start:job]
@dataclass(frozen=True)
class Job:
    """A claimed job and the lease token that proves who holds it.

    Attributes:
        id: The job's primary key.
        payload: What the job asks for.
        attempts: How many times the job has been claimed, this claim included.
        token: The lease token. Completing or renewing the job must present it.
    """

    id: int
    payload: str
    attempts: int
    token: str


# --8<-- [end:job]

# --8<-- [start:schema]
PG_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS jobs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payload     text NOT NULL,
    state       text NOT NULL DEFAULT 'ready'
                CHECK (state IN ('ready', 'running', 'done', 'dead')),
    attempts    integer NOT NULL DEFAULT 0,
    lease_token uuid,
    lease_until timestamptz
);
CREATE INDEX IF NOT EXISTS jobs_claimable ON jobs (id)
    WHERE state IN ('ready', 'running');
"""


def connect(dsn: str, *, timeout: int = 5) -> PgConnection:
    """Open an autocommit connection: every claim commits on its own, at once."""
    import psycopg

    return psycopg.connect(dsn, autocommit=True, connect_timeout=timeout)


def create_schema(conn: PgConnection) -> None:
    """Create the ``jobs`` table and its partial index if they do not exist."""
    conn.execute(PG_SCHEMA)


def enqueue(conn: PgConnection, payloads: Iterable[str]) -> list[int]:
    """Insert one ready job per payload in one statement; return their ids."""
    rows = conn.execute(
        "INSERT INTO jobs (payload) SELECT unnest(%s::text[]) RETURNING id",
        (list(payloads),),
    ).fetchall()
    return [int(row[0]) for row in rows]


# --8<-- [end:schema]


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

# --8<-- [start:claim-sql]
PG_CLAIM: Final = """
UPDATE jobs
   SET state = 'running',
       attempts = attempts + 1,
       lease_token = %(token)s::uuid,
       lease_until = coalesce(%(now)s::timestamptz, now()) + %(lease)s
 WHERE id = (
        SELECT id FROM jobs
         WHERE state = 'ready'
            OR (state = 'running'
                AND lease_until <= coalesce(%(now)s::timestamptz, now()))
         ORDER BY id
         LIMIT 1
           FOR UPDATE SKIP LOCKED)
RETURNING id, payload, attempts
"""
# --8<-- [end:claim-sql]


# --8<-- [start:claim]
def claim(
    conn: PgConnection, *, lease: timedelta, now: datetime | None = None
) -> Job | None:
    """Claim the oldest job that is ready or whose lease has expired.

    One statement locks a row that no other worker holds (``SKIP LOCKED``),
    marks it running, counts the attempt and stamps a fresh lease. The claim
    commits at once; the work happens outside any transaction.

    Args:
        conn: An autocommit connection.
        lease: How long the job stays yours without a renewal.
        now: The time to claim at; None means the database's ``now()``.

    Returns:
        The claimed job, or None when nothing is claimable.

    Raises:
        ValueError: If ``lease`` is not positive.
    """
    if lease <= timedelta(0):
        raise ValueError(f"lease must be positive, got {lease}")
    token = str(uuid.uuid4())
    row = conn.execute(
        PG_CLAIM, {"token": token, "now": now, "lease": lease}
    ).fetchone()
    if row is None:
        return None
    return Job(id=int(row[0]), payload=str(row[1]), attempts=int(row[2]), token=token)


# --8<-- [end:claim]

# --8<-- [start:fence]
PG_SETTLE: Final = """
UPDATE jobs SET state = %(state)s, lease_token = NULL, lease_until = NULL
 WHERE id = %(id)s AND state = 'running' AND lease_token = %(token)s::uuid
"""
PG_RENEW: Final = """
UPDATE jobs SET lease_until = coalesce(%(now)s::timestamptz, now()) + %(lease)s
 WHERE id = %(id)s AND state = 'running' AND lease_token = %(token)s::uuid
"""


def complete(conn: PgConnection, job: Job) -> bool:
    """Mark the job done, but only if ``job.token`` still holds the lease.

    Returns:
        False when another worker has reclaimed the job since: this worker's
        result is stale and must not be reported as the job's outcome.
    """
    params = {"state": "done", "id": job.id, "token": job.token}
    return conn.execute(PG_SETTLE, params).rowcount == 1


def bury(conn: PgConnection, job: Job) -> bool:
    """Move the job to ``dead`` (no more attempts), under the same lease check."""
    params = {"state": "dead", "id": job.id, "token": job.token}
    return conn.execute(PG_SETTLE, params).rowcount == 1


def renew(
    conn: PgConnection, job: Job, *, lease: timedelta, now: datetime | None = None
) -> bool:
    """Extend the lease of a long job; False means the lease is lost: stop work."""
    params = {"id": job.id, "token": job.token, "now": now, "lease": lease}
    return conn.execute(PG_RENEW, params).rowcount == 1


# --8<-- [end:fence]


# --8<-- [start:worker]
def work(
    conn: PgConnection,
    handle: Callable[[Job], None],
    *,
    stop: threading.Event,
    lease: timedelta,
    max_attempts: int = 5,
    idle: float = 1.0,
) -> Counter[str]:
    """Claim and run jobs until ``stop`` is set; return what happened, counted.

    ``handle`` must finish within ``lease`` or call :func:`renew`. A job whose
    handler raises stays leased and is retried once the lease expires; after
    ``max_attempts`` claims it is buried instead of run again.

    Returns:
        Counts of ``done``, ``failed``, ``buried`` and ``lost`` (lease lost).
    """
    outcome: Counter[str] = Counter()
    while not stop.is_set():
        job = claim(conn, lease=lease)
        if job is None:
            stop.wait(random.uniform(idle / 2, idle))  # jittered poll, stop wakes it
            continue
        if job.attempts > max_attempts:
            outcome["buried" if bury(conn, job) else "lost"] += 1
            continue
        try:
            handle(job)
        except Exception:
            log.exception("job %d failed on attempt %d", job.id, job.attempts)
            outcome["failed"] += 1  # retried when its lease runs out
            continue
        outcome["done" if complete(conn, job) else "lost"] += 1
    return outcome


# --8<-- [end:worker]

# --8<-- [start:sqlite-connect]
SQLITE_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS jobs (
    id          INTEGER PRIMARY KEY,
    payload     TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'ready'
                CHECK (state IN ('ready', 'running', 'done', 'dead')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    lease_token TEXT,
    lease_until REAL
);
"""


def sqlite_connect(path: str | Path, *, timeout: float = 5.0) -> sqlite3.Connection:
    """Open a queue database in WAL mode, with transactions under your control.

    ``isolation_level=None`` stops the sqlite3 module from opening transactions
    on its own on every Python from 3.11 to 3.13, so ``BEGIN IMMEDIATE`` is
    yours to issue. ``timeout`` is how long a statement waits for another
    connection's lock before it raises ``sqlite3.OperationalError``.

    Raises:
        RuntimeError: If the database cannot use WAL (for example ``:memory:``).
    """
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
    if mode != "wal":
        conn.close()
        raise RuntimeError(f"{path}: journal_mode is {mode!r}, WAL is required")
    return conn


def sqlite_create_schema(conn: sqlite3.Connection) -> None:
    """Create the ``jobs`` table if it does not exist."""
    conn.execute(SQLITE_SCHEMA)


# --8<-- [end:sqlite-connect]


# --8<-- [start:sqlite-transaction]
@contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """Run the block in a write transaction that holds SQLite's write lock."""
    conn.execute("BEGIN IMMEDIATE")  # waits up to `timeout` for the write lock
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


# --8<-- [end:sqlite-transaction]


def sqlite_enqueue(conn: sqlite3.Connection, payloads: Iterable[str]) -> int:
    """Insert one ready job per payload in one transaction; return how many."""
    rows = [(payload,) for payload in payloads]
    with _immediate(conn):
        conn.executemany("INSERT INTO jobs (payload) VALUES (?)", rows)
    return len(rows)


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


# --8<-- [start:sqlite-claim]
SQLITE_CLAIM: Final = """
UPDATE jobs
   SET state = 'running', attempts = attempts + 1,
       lease_token = :token, lease_until = :now + :lease
 WHERE id = (SELECT id FROM jobs
              WHERE state = 'ready'
                 OR (state = 'running' AND lease_until <= :now)
              ORDER BY id LIMIT 1)
RETURNING id, payload, attempts
"""


def sqlite_claim(
    conn: sqlite3.Connection, *, lease: float, now: float | None = None
) -> Job | None:
    """Claim the oldest ready or lease-expired job inside ``BEGIN IMMEDIATE``.

    SQLite has one writer at a time, so the write lock taken by ``BEGIN
    IMMEDIATE`` serialises claims: nobody can claim between your read and your
    write. ``now`` defaults to the host's wall clock (``time.time()``).
    """
    if lease <= 0:
        raise ValueError(f"lease must be positive, got {lease}")
    token = str(uuid.uuid4())
    at = time.time() if now is None else now
    with _immediate(conn):
        rows = conn.execute(
            SQLITE_CLAIM, {"token": token, "now": at, "lease": lease}
        ).fetchall()  # read every row before COMMIT
    if not rows:
        return None
    ((job_id, payload, attempts),) = rows
    return Job(
        id=int(job_id), payload=str(payload), attempts=int(attempts), token=token
    )


# --8<-- [end:sqlite-claim]


# --8<-- [start:sqlite-complete]
def sqlite_complete(conn: sqlite3.Connection, job: Job) -> bool:
    """Mark the job done if ``job.token`` still holds its lease, as :func:`complete`."""
    cursor = conn.execute(
        "UPDATE jobs SET state = 'done', lease_token = NULL, lease_until = NULL"
        " WHERE id = ? AND state = 'running' AND lease_token = ?",
        (job.id, job.token),
    )
    return cursor.rowcount == 1


# --8<-- [end:sqlite-complete]


# --------------------------------------------------------------------------- #
# Demos: the output shown on the page
# --------------------------------------------------------------------------- #


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


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as scratch:
        print("\n".join(sqlite_demo(Path(scratch) / "queue.db")))
