"""The tasks the Celery page runs, on one app that the caller configures.

The worker's command line names this module's ``app``; the broker URL and the
settings come from the caller (see ``settings.py``). Every task writes what it
did to a Redis list or counter, the side channel the demos count from.
"""

from __future__ import annotations

import functools
import os
import signal
from typing import Any

import redis
from celery import Celery, Task  # type: ignore[import-untyped]

from snippets.message_queues.celery_tasks.once import charge_once, charge_under_lock

__all__ = [
    "app",
    "charge_deduped",
    "charge_locked",
    "poison",
    "poison_requeue",
    "poison_retry",
    "step",
]

app = Celery("celery_tasks")


@functools.cache
def journal(url: str) -> redis.Redis:
    """One Redis client per process for the side channel."""
    return redis.Redis.from_url(url)


def _who(task: Task) -> str:
    """The worker's name and whether the broker marked this a redelivery."""
    worker = str(task.request.hostname).split("@")[0]
    info: dict[str, Any] = task.request.delivery_info or {}
    return worker + (" redelivered" if info.get("redelivered") else "")


# --8<-- [start:step]
@app.task(name="celery_tasks.step", bind=True)  # type: ignore[untyped-decorator]
def step(
    self: Task, url: str, log: str, label: str, gate: str = "", hold: float = 30
) -> None:
    """Log the start, wait until ``gate`` opens (at most ``hold`` s), log the end."""
    journal(url).rpush(log, f"start {label} {_who(self)}")
    if gate:  # BRPOPLPUSH onto itself: wait for the gate and leave it open
        journal(url).brpoplpush(gate, gate, timeout=hold)
    journal(url).rpush(log, f"end {label} {_who(self)}")


# --8<-- [end:step]


# --8<-- [start:poison]
def _die(self: Task, url: str, log: str) -> None:
    """Log the run, then kill the pool process that runs it (like an OOM kill)."""
    journal(url).rpush(log, f"run {self.request.retries} {_who(self)}")
    os.kill(os.getpid(), signal.SIGKILL)


@app.task(name="celery_tasks.poison", bind=True, acks_late=True)  # type: ignore[untyped-decorator]
def poison(self: Task, url: str, log: str) -> None:
    _die(self, url, log)


@app.task(  # type: ignore[untyped-decorator]
    name="celery_tasks.poison_requeue",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
)
def poison_requeue(self: Task, url: str, log: str) -> None:
    _die(self, url, log)


@app.task(  # type: ignore[untyped-decorator]
    name="celery_tasks.poison_retry",
    bind=True,
    acks_late=True,
    retry_on_worker_lost=True,  # Celery 5.7
    max_retries=1,
    default_retry_delay=0,  # default 180 s
)
def poison_retry(self: Task, url: str, log: str) -> None:
    _die(self, url, log)


# --8<-- [end:poison]


# --8<-- [start:charge]
@app.task(name="celery_tasks.charge_locked", bind=True)  # type: ignore[untyped-decorator]
def charge_locked(self: Task, url: str, log: str, order: str, amount: int) -> None:
    charged = charge_under_lock(journal(url), order, amount, f"{log}:balance", ttl=30)
    journal(url).rpush(log, f"{order} {'charged' if charged else 'skipped'}")


@app.task(name="celery_tasks.charge_deduped", bind=True)  # type: ignore[untyped-decorator]
def charge_deduped(self: Task, url: str, log: str, order: str, amount: int) -> None:
    balance, task_id = f"{log}:balance", self.request.id
    charged = charge_once(journal(url), order, amount, balance, task_id=task_id)
    journal(url).rpush(log, f"{order} {'charged' if charged else 'skipped'}")


# --8<-- [end:charge]
