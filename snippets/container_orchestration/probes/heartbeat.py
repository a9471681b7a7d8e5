"""Liveness from progress: a worker loop that beats, and a beat for event loops."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable

__all__ = [
    "Heartbeat",
    "beat_from_loop",
    "run_worker",
]

log = logging.getLogger(__name__)


# --8<-- [start:heartbeat]
class Heartbeat:
    """Proof of progress from one loop: the loop beats, the probe reads the age.

    Args:
        name: Shown in the `/livez` body when the heartbeat is stale.
        max_age: Seconds without a beat after which the loop counts as stuck.
            Longer than the longest legitimate pause between two beats
            (the slowest job, a full garbage collection), shorter than the
            time you are willing to serve from a wedged process.
    """

    def __init__(self, name: str, max_age: float) -> None:
        self.name = name
        self.max_age = max_age
        self._last = time.monotonic()  # a float store is atomic: no lock

    def beat(self) -> None:
        """Record progress. Call it from the loop itself, once per iteration."""
        self._last = time.monotonic()

    def age(self) -> float:
        """Seconds since the last beat."""
        return time.monotonic() - self._last

    def fresh(self) -> bool:
        """Whether the loop beat within `max_age` seconds."""
        return self.age() <= self.max_age


# --8<-- [end:heartbeat]


# --8<-- [start:worker]
def run_worker(
    jobs: queue.Queue[Callable[[], None]],
    heartbeat: Heartbeat,
    stop: threading.Event,
    poll: float = 0.1,
) -> None:
    """Run jobs until `stop` is set, beating once per iteration.

    An idle worker still beats (every `poll` seconds). A job that never
    returns, such as one blocked on a lock that is never released, stops the
    beats: that is the deadlock `/livez` exists to catch.
    """
    while not stop.is_set():
        heartbeat.beat()
        try:
            job = jobs.get(timeout=poll)
        except queue.Empty:
            continue
        try:
            job()
        except Exception:
            log.exception("job failed")  # a failed job is not a dead worker
        finally:
            jobs.task_done()


async def beat_from_loop(heartbeat: Heartbeat, interval: float) -> None:
    """Beat from an asyncio event loop until cancelled.

    Run it as a task on the loop you want to watch. Code that blocks the loop
    (a synchronous call, a CPU-bound step) delays this task too, so the
    heartbeat goes stale exactly while the loop cannot serve anything.
    """
    while True:
        heartbeat.beat()
        await asyncio.sleep(interval)


# --8<-- [end:worker]
