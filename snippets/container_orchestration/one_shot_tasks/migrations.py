"""Schema migrations that run once across N replicas: :func:`migrate`.

``migrate`` holds the advisory lock of ``locking.py`` while it reads
``schema_migrations`` and applies what is missing, each migration in one
transaction together with its version row. ``migrate_unlocked`` is the
broken runner the page starts from.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from .locking import Conn, LockTimeout, advisory_lock, pg_duration

__all__ = [
    "MIGRATIONS",
    "VERSION_TABLE",
    "Migration",
    "MigrationLockTimeout",
    "applied_versions",
    "apply_one",
    "apply_pending",
    "migrate",
    "migrate_unlocked",
]

log = logging.getLogger(__name__)


def _no_pause() -> None:
    """The default for ``between``: no pause between the check and the work."""


# --8<-- [start:migrations]
@dataclass(frozen=True)
class Migration:
    """One schema or data change, applied in one transaction.

    Attributes:
        version: Applied in ascending order; recorded in ``schema_migrations``.
        name: For people reading ``schema_migrations``.
        apply: SQL to run, or a function that runs statements on the connection
            it is given (inside the migration's transaction).
    """

    version: int
    name: str
    apply: str | Callable[[Conn], None]


MIGRATIONS: Final = (
    Migration(
        1,
        "create plans",
        """
        CREATE TABLE plans (
            id    integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name  text NOT NULL,
            cents integer NOT NULL
        );
        INSERT INTO plans (name, cents) VALUES ('free', 0), ('pro', 1200);
        """,
    ),
    Migration(
        2,
        "add plan tier",
        """
        ALTER TABLE plans ADD COLUMN tier text;
        UPDATE plans SET tier = CASE WHEN cents = 0 THEN 'free' ELSE 'paid' END;
        ALTER TABLE plans ALTER COLUMN tier SET NOT NULL;
        """,
    ),
)
# --8<-- [end:migrations]


# --8<-- [start:apply]
VERSION_TABLE: Final = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_by text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def applied_versions(conn: Conn) -> set[int]:
    """The versions recorded in ``schema_migrations``."""
    rows = conn.execute("SELECT version FROM schema_migrations").fetchall()
    return {int(row[0]) for row in rows}


def apply_one(
    conn: Conn, migration: Migration, *, identity: str, lock_timeout: float
) -> None:
    """Run one migration and record it, in one transaction.

    ``lock_timeout`` applies to the migration's own statements: an ``ALTER
    TABLE`` that queues behind a long query on that table fails after it,
    instead of blocking every later query on the table while it waits.
    """
    with conn.transaction():
        conn.execute(
            "SELECT set_config('lock_timeout', %s, true)", (pg_duration(lock_timeout),)
        )
        if isinstance(migration.apply, str):
            conn.execute(migration.apply.encode())
        else:
            migration.apply(conn)
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_by)"
            " VALUES (%s, %s, %s)",
            (migration.version, migration.name, identity),
        )


# --8<-- [end:apply]


# --8<-- [start:unlocked]
def migrate_unlocked(
    conn: Conn,
    migrations: Sequence[Migration],
    *,
    identity: str,
    between: Callable[[], object] = _no_pause,
) -> list[int]:
    """Check the version table, then apply what is pending. **Broken.**

    Replicas that start together all read the same versions and all run the
    same migrations: the losers fail on objects the winner created (and crash
    into a restart loop), or, for migrations that do not fail when repeated,
    apply them twice.

    Args:
        conn: An autocommit connection; ``schema_migrations`` must exist.
        migrations: The migrations, in any order.
        identity: Recorded as ``applied_by``.
        between: Called between the check and the work. The tests pass a
            barrier here to hold every replica inside the race window.

    Returns:
        The versions this replica applied.
    """
    done = applied_versions(conn)
    pending = sorted((m for m in migrations if m.version not in done), key=_version)
    between()  # another replica can read the same versions here
    for migration in pending:
        apply_one(conn, migration, identity=identity, lock_timeout=5.0)
    return [m.version for m in pending]


# --8<-- [end:unlocked]


def _version(migration: Migration) -> int:
    return migration.version


class MigrationLockTimeout(LockTimeout):
    """Another replica held the migration lock for longer than we may wait."""


# --8<-- [start:pending]
def apply_pending(
    conn: Conn, migrations: Sequence[Migration], *, identity: str, lock_timeout: float
) -> list[int]:
    """Apply, in version order, every migration not yet recorded. Hold the lock.

    Returns:
        The versions applied; empty when another replica already applied them.
    """
    conn.execute(VERSION_TABLE)  # inside the lock: no race creating it
    done = applied_versions(conn)  # read inside the lock, never before
    applied = []
    for migration in sorted(migrations, key=_version):
        if migration.version not in done:
            apply_one(conn, migration, identity=identity, lock_timeout=lock_timeout)
            log.info("%s applied migration %d", identity, migration.version)
            applied.append(migration.version)
    return applied


# --8<-- [end:pending]


# --8<-- [start:migrate]
def migrate(
    dsn: str,
    migrations: Sequence[Migration],
    *,
    identity: str,
    lock: str = "schema-migrations",
    wait: float = 30.0,
    ddl_lock_timeout: float = 5.0,
) -> list[int]:
    """Apply the pending migrations once, whichever replica gets the lock first.

    Args:
        dsn: A direct connection, not a transaction-mode pooler.
        migrations: The migrations, in any order; versions must be unique.
        identity: This replica's name, recorded as ``applied_by``.
        lock: The advisory lock's name; one per database and migration set.
        wait: Seconds to wait for the lock, within your start-up budget.
        ddl_lock_timeout: ``lock_timeout`` for each migration's statements.

    Returns:
        The versions this replica applied; empty when another replica already
        had applied them.

    Raises:
        MigrationLockTimeout: The lock was not free within ``wait`` seconds.
        ValueError: Two migrations share a version.
    """
    if len({m.version for m in migrations}) != len(migrations):
        raise ValueError("migration versions must be unique")
    with advisory_lock(dsn, lock, wait=wait, timeout=MigrationLockTimeout) as conn:
        return apply_pending(
            conn, migrations, identity=identity, lock_timeout=ddl_lock_timeout
        )


# --8<-- [end:migrate]
