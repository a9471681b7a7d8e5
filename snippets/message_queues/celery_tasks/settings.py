"""Celery settings that decide whether a task is lost or run twice.

Copy the dictionaries into your own configuration (``app.conf.update(...)`` or
a ``celeryconfig`` module). Each value is explained on the page; the defaults
they replace are Celery 5.7.0's and kombu 5.7.0's.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RELIABLE", "redis_transport_options"]

# --8<-- [start:reliable]
RELIABLE: dict[str, Any] = {
    # Ack after the task returns, not when it starts (default False): a worker
    # killed mid-task leaves the message unacked, and the broker redelivers it.
    "task_acks_late": True,
    # Reserve one message per pool process (default 4): with acks_late a busy
    # process holds no queued task that an idle worker could run.
    "worker_prefetch_multiplier": 1,
    # When a pool process dies under a task, send the task again like
    # Task.retry() would, so max_retries bounds a task that kills its worker.
    # (Celery 5.7.0; task_reject_on_worker_lost=True requeues without a bound.)
    "task_retry_on_worker_lost": True,
}
# --8<-- [end:reliable]


# --8<-- [start:redis-options]
def redis_transport_options(
    visibility_timeout: int, *, sweep_seconds: int = 10, prefix: str = ""
) -> dict[str, Any]:
    """``broker_transport_options`` for the Redis broker, the same everywhere.

    ``visibility_timeout`` (kombu's default: 3600 s) must be longer than the
    longest ETA or countdown you use and the longest task that runs with
    ``task_acks_late``: after it, any process that consumes from this Redis
    database puts the unacked message back in its queue. Give every worker and
    every client the same value; the shortest one on the database wins.
    ``sweep_seconds`` is how often a worker looks for such messages (kombu:
    every 10 s, scanning on every 10th look).
    """
    options: dict[str, Any] = {
        "visibility_timeout": visibility_timeout,
        "unacked_restore_interval": sweep_seconds,
        "unacked_restore_throttle": 1,
    }
    if prefix:
        options["global_keyprefix"] = prefix  # one app per key prefix
    return options


# --8<-- [end:redis-options]
