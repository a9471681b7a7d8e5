"""SQLite: the same claim, lease and fence with BEGIN IMMEDIATE, stdlib only."""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import psycopg
    from psycopg.rows import TupleRow

    PgConnection = psycopg.Connection[TupleRow]


from snippets.message_queues.database_work_queue.job import Job

__all__ = [
    "SQLITE_CLAIM",
    "SQLITE_SCHEMA",
    "sqlite_claim",
    "sqlite_complete",
    "sqlite_connect",
    "sqlite_create_schema",
    "sqlite_enqueue",
]

log = logging.getLogger(__name__)


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
