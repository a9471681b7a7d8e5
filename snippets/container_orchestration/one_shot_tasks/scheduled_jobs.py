"""A scheduled job that does its work once per period, however often it starts.

A Kubernetes CronJob with ``concurrencyPolicy: Forbid`` makes a second run of
the same night rarer, not impossible. :func:`run_once` makes it harmless: it
takes an advisory lock named after the period, and records the period in the
transaction that does the work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from .locking import Conn, LockTimeout, advisory_lock

__all__ = ["TASK_RUNS", "TaskLockTimeout", "run_once"]


# --8<-- [start:run-once]
TASK_RUNS: Final = """
CREATE TABLE IF NOT EXISTS task_runs (
    task text PRIMARY KEY,
    run_by text NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now()
)
"""


class TaskLockTimeout(LockTimeout):
    """Another run held the task's lock for longer than we may wait."""


def run_once(
    dsn: str,
    task: str,
    body: Callable[[Conn], object],
    *,
    identity: str,
    wait: float = 30.0,
) -> bool:
    """Run ``body`` unless a run of ``task`` has finished already.

    Name a scheduled task after the period it covers
    (``"nightly-billing:2026-12-06"``), not after the time it started, so a
    second run for the same night finds it done. ``body`` runs in the
    transaction that records the task in ``task_runs`` (create it with
    ``TASK_RUNS`` in a migration): its writes and the record commit together.

    Returns:
        True if this call ran ``body``, False if an earlier run had.

    Raises:
        TaskLockTimeout: Another run held the task's lock longer than ``wait``.
    """
    with advisory_lock(dsn, f"task:{task}", wait=wait, timeout=TaskLockTimeout) as conn:
        with conn.transaction():
            done = "SELECT 1 FROM task_runs WHERE task = %s"
            if conn.execute(done, (task,)).fetchone() is not None:
                return False
            body(conn)
            record = "INSERT INTO task_runs (task, run_by) VALUES (%s, %s)"
            conn.execute(record, (task, identity))
        return True


# --8<-- [end:run-once]
