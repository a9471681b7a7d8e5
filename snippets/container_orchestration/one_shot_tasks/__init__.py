"""One-shot tasks that run once across N replicas: migrations and nightly jobs.

Every replica calls :func:`migrate` before it reports ready. A session-level
PostgreSQL advisory lock, held on a dedicated connection, lets one replica run
the pending migrations while the others wait; each of them then reads the
version table, inside the lock, and finds nothing left to do.

Each migration commits together with its row in ``schema_migrations``, so a
replica killed half-way leaves no half-applied migration behind: its session
ends, PostgreSQL rolls back its transaction and releases its lock, and the next
replica in line runs that migration again from the start. ``lock_timeout``
bounds how long a replica waits, so it fails (and is restarted) instead of
hanging past its start-up probe.

:func:`run_once` applies the same lock to a scheduled job, keyed by the period
the job covers, so a second run of the same night does nothing.
"""

from .locking import Conn, LockTimeout, advisory_lock, lock_key
from .migrations import (
    MIGRATIONS,
    VERSION_TABLE,
    Migration,
    MigrationLockTimeout,
    applied_versions,
    apply_one,
    apply_pending,
    migrate,
    migrate_unlocked,
)
from .scheduled_jobs import TASK_RUNS, TaskLockTimeout, run_once

__all__ = [
    "MIGRATIONS",
    "TASK_RUNS",
    "VERSION_TABLE",
    "Conn",
    "LockTimeout",
    "Migration",
    "MigrationLockTimeout",
    "TaskLockTimeout",
    "advisory_lock",
    "applied_versions",
    "apply_one",
    "apply_pending",
    "lock_key",
    "migrate",
    "migrate_unlocked",
    "run_once",
]
