"""A lease on PostgreSQL whose expiry the database clock decides.

One row per lease holds the holder, a fencing token that grows by one on every
acquisition, and an expiry time computed by the database (``now()``), so
replicas never compare their own clocks with each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

import psycopg
from psycopg.rows import TupleRow

__all__ = [
    "ACQUIRE",
    "RENEW",
    "SCHEMA",
    "Conn",
    "Lease",
    "connect",
    "create_schema",
    "release",
    "renew",
    "try_acquire",
]

Conn = psycopg.Connection[TupleRow]


# --8<-- [start:schema]
SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS leases (
    name       text PRIMARY KEY,
    holder     text,
    token      bigint NOT NULL DEFAULT 0,
    expires_at timestamptz NOT NULL DEFAULT '-infinity'
);
CREATE TABLE IF NOT EXISTS fences (
    resource text PRIMARY KEY,
    token    bigint NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS ledger (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    resource text NOT NULL,
    token    bigint NOT NULL,
    holder   text NOT NULL,
    entry    text NOT NULL
);
"""


def create_schema(conn: Conn, *, lease: str, resource: str) -> None:
    """Create the tables and the rows for one lease and one protected resource.

    Run it once (as a migration), not from every replica at start-up.
    """
    conn.execute(SCHEMA)
    conn.execute(
        "INSERT INTO leases (name) VALUES (%s) ON CONFLICT DO NOTHING", (lease,)
    )
    conn.execute(
        "INSERT INTO fences (resource) VALUES (%s) ON CONFLICT DO NOTHING",
        (resource,),
    )


# --8<-- [end:schema]


# --8<-- [start:connect]
def connect(
    dsn: str, *, statement_timeout: float | None = None, io_timeout: float = 10.0
) -> Conn:
    """Open an autocommit connection whose waits are all bounded.

    Args:
        dsn: A libpq connection string or URL.
        statement_timeout: Seconds after which the server cancels a statement.
            The lease connection uses the retry period, so a renewal that hangs
            on a lock or a slow server cannot outlive the renew deadline.
        io_timeout: Seconds to wait for the server to connect, for sent data
            to be acknowledged (``tcp_user_timeout``) and for a silent
            connection to be declared dead by keepalives. libpq's minimum
            connect timeout is 2 s.
    """
    seconds = max(2, math.ceil(io_timeout))
    conn = psycopg.connect(
        dsn,
        autocommit=True,
        connect_timeout=seconds,
        tcp_user_timeout=seconds * 1000,
        keepalives=1,
        keepalives_idle=seconds,
        keepalives_interval=1,
        keepalives_count=3,
    )
    if statement_timeout is not None:
        millis = f"{round(statement_timeout * 1000)}ms"
        conn.execute("SELECT set_config('statement_timeout', %s, false)", (millis,))
    return conn


# --8<-- [end:connect]


# --8<-- [start:lease]
@dataclass(frozen=True)
class Lease:
    """A term of leadership.

    Attributes:
        name: The lease's name: one lease per singleton job.
        holder: This replica's identity.
        token: The fencing token of this term. Every write must carry it.
    """

    name: str
    holder: str
    token: int


ACQUIRE: Final = """
UPDATE leases
   SET holder = %(holder)s, token = token + 1, expires_at = now() + %(ttl)s
 WHERE name = %(name)s AND expires_at <= now()
RETURNING token
"""


def try_acquire(conn: Conn, name: str, holder: str, ttl: timedelta) -> Lease | None:
    """Take the lease if it is free or expired; the token grows by one.

    Two replicas that race for an expired lease update the same row: the row
    lock orders them, and the second one finds the lease taken.
    """
    row = conn.execute(ACQUIRE, {"name": name, "holder": holder, "ttl": ttl})
    found = row.fetchone()
    return None if found is None else Lease(name, holder, int(found[0]))


# --8<-- [end:lease]


# --8<-- [start:renew-release]
RENEW: Final = """
UPDATE leases SET expires_at = now() + %(ttl)s
 WHERE name = %(name)s AND holder = %(holder)s AND token = %(token)s
   AND expires_at > now()
"""


def renew(conn: Conn, lease: Lease, ttl: timedelta) -> bool:
    """Extend the lease; False once it has expired or another replica holds it."""
    params = {"name": lease.name, "holder": lease.holder, "token": lease.token}
    return conn.execute(RENEW, {**params, "ttl": ttl}).rowcount == 1


def release(conn: Conn, lease: Lease) -> bool:
    """Hand the lease back at once, so a successor need not wait for it to expire."""
    cursor = conn.execute(
        "UPDATE leases SET holder = NULL, expires_at = '-infinity'"
        " WHERE name = %s AND holder = %s AND token = %s",
        (lease.name, lease.holder, lease.token),
    )
    return cursor.rowcount == 1


# --8<-- [end:renew-release]
