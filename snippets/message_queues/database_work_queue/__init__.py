"""Database-backed work queue: claim with ``FOR UPDATE SKIP LOCKED`` and a lease.

PostgreSQL (through psycopg 3) is the production path; SQLite is the embedded
default that runs with no server. Both claim a job in one statement, give the
worker a lease (a token and an expiry time), let another worker take the job
back once the lease has expired, and accept a completion only from the worker
that still holds the lease.

psycopg is imported only when you connect to PostgreSQL, so the SQLite half runs
on the standard library alone::

    python -m snippets.message_queues.database_work_queue.demo sqlite
"""

from typing import TYPE_CHECKING

from snippets.message_queues.database_work_queue.job import Job
from snippets.message_queues.database_work_queue.postgres import (
    PG_CLAIM,
    PG_SCHEMA,
    bury,
    claim,
    complete,
    connect,
    create_schema,
    enqueue,
    renew,
    work,
)
from snippets.message_queues.database_work_queue.sqlite import (
    SQLITE_CLAIM,
    SQLITE_SCHEMA,
    sqlite_claim,
    sqlite_complete,
    sqlite_connect,
    sqlite_create_schema,
    sqlite_enqueue,
)

__all__ = [
    "PG_CLAIM",
    "PG_SCHEMA",
    "SQLITE_CLAIM",
    "SQLITE_SCHEMA",
    "Job",
    "bury",
    "claim",
    "complete",
    "connect",
    "create_schema",
    "enqueue",
    "renew",
    "sqlite_claim",
    "sqlite_complete",
    "sqlite_connect",
    "sqlite_create_schema",
    "sqlite_enqueue",
    "work",
]

if TYPE_CHECKING:
    from snippets.message_queues.database_work_queue.postgres import (
        PgConnection as PgConnection,
    )
