"""A PostgreSQL session-level advisory lock with a bounded wait.

Both :func:`~snippets.container_orchestration.one_shot_tasks.migrate` and
:func:`~snippets.container_orchestration.one_shot_tasks.run_once` hold one
while they check and do their work.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.rows import TupleRow

Conn = psycopg.Connection[TupleRow]

__all__ = ["Conn", "LockTimeout", "advisory_lock", "lock_key", "pg_duration"]


class LockTimeout(RuntimeError):
    """Another session held the lock for longer than we may wait."""


def pg_duration(seconds: float) -> str:
    """Seconds as a PostgreSQL duration setting, at least 1 ms."""
    return f"{max(1, round(seconds * 1000))}ms"


# --8<-- [start:advisory-lock]
def lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for ``name``, the same in every process.

    Python's ``hash()`` is salted per process, so it cannot serve here.
    """
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def advisory_lock(
    dsn: str, name: str, *, wait: float, timeout: type[LockTimeout] = LockTimeout
) -> Iterator[Conn]:
    """Hold the advisory lock ``name`` on a connection of its own.

    Args:
        dsn: A direct connection, not a transaction-mode pooler: the lock
            belongs to one server session.
        name: The lock's name; :func:`lock_key` turns it into the key.
        wait: Seconds to wait for the lock (``lock_timeout``).
        timeout: The exception to raise when the wait runs out.

    Yields:
        The autocommit connection that holds the lock, to work on.

    Raises:
        LockTimeout: (or ``timeout``) The lock was not free within ``wait``.
    """
    key = lock_key(name)
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute(
            "SELECT set_config('lock_timeout', %s, false)", (pg_duration(wait),)
        )
        try:
            conn.execute("SELECT pg_advisory_lock(%s)", (key,))
        except psycopg.errors.LockNotAvailable as error:
            raise timeout(f"{name!r} still held after {wait} s") from error
        try:
            yield conn
        finally:
            if not conn.broken:  # a broken session has released it already
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


# --8<-- [end:advisory-lock]
