"""PostgreSQL: claim with FOR UPDATE SKIP LOCKED, a lease, and a fenced completion."""

from __future__ import annotations

import logging
import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import psycopg
    from psycopg.rows import TupleRow

    PgConnection = psycopg.Connection[TupleRow]


from snippets.message_queues.database_work_queue.job import Job

__all__ = [
    "PG_CLAIM",
    "PG_SCHEMA",
    "bury",
    "claim",
    "complete",
    "connect",
    "create_schema",
    "enqueue",
    "renew",
    "work",
]

log = logging.getLogger(__name__)


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
