"""Harness of the parallel-batch-jobs demos and tests: count what pools do.

* `CountedPickles` wraps a worker function and counts how often the parent
  pickles it: a process pool pickles the function once per task it sends, so
  the count is the number of tasks (batches) that crossed to the workers.
* `CountingThreadPool` counts the futures ``ThreadPoolExecutor`` creates.
* `Pulled` counts the items a consumer took from a generator, and can stop an
  endless one after a limit.
* The worker functions (`work`, `pid_after_barrier`, `cost_after_barrier`)
  are module-level so that worker processes can import them; a barrier passed
  with the pool's ``initializer`` makes chunks run on distinct workers.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

__all__ = [
    "BARRIER_TIMEOUT",
    "CountedPickles",
    "CountingThreadPool",
    "Pulled",
    "cost_after_barrier",
    "install_barrier",
    "pid_after_barrier",
    "work",
]

P = ParamSpec("P")
T = TypeVar("T")
BARRIER_TIMEOUT = 60.0  # seconds a chunk waits for the other chunks at most


def work(item: int) -> int:
    """The per-item work of the demos: cheap, so the task count is what shows."""
    return item * item


class CountedPickles:
    """A picklable stand-in for ``work`` that counts its own pickling.

    It pickles as a reference to ``work``: the worker process unpickles the
    plain function, and only the parent's counter moves.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def __call__(self, item: int) -> int:
        return work(item)

    def __reduce__(self) -> tuple[Callable[[], Callable[[int], int]], tuple[()]]:
        with self._lock:  # pools pickle tasks from a feeder thread
            self.count += 1
        return _work_reference, ()


def _work_reference() -> Callable[[int], int]:
    return work


class CountingThreadPool(ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` that counts the futures it creates."""

    submitted = 0

    def submit(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> Future[T]:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


class Pulled:
    """Counts the items taken from ``source``; raises after ``limit`` if set."""

    def __init__(self, source: Iterator[int] | None = None, limit: int = 0) -> None:
        self.count = 0
        self.limit = limit
        self._source = itertools.count() if source is None else source

    def __iter__(self) -> Iterator[int]:
        for item in self._source:
            if self.limit and self.count >= self.limit:
                raise RuntimeError(
                    f"pulled {self.count} items and no result was consumed yet"
                )
            self.count += 1
            yield item


_barrier: Any = None


def install_barrier(barrier: Any) -> None:
    """Pool ``initializer``: keep the shared barrier in this worker process."""
    global _barrier
    _barrier = barrier


def pid_after_barrier(item: int, chunksize: int) -> int:
    """The worker's pid; the first item of each chunk waits for the others.

    While a chunk waits, its worker cannot take another chunk, so every chunk
    of the plan runs on a worker of its own.
    """
    if item % chunksize == 0:
        _barrier.wait(BARRIER_TIMEOUT)
    return os.getpid()


def cost_after_barrier(item: tuple[int, int], chunksize: int) -> tuple[int, int]:
    """(worker pid, cost) for an item ``(index, cost)``; chunks as above."""
    index, cost = item
    return pid_after_barrier(index, chunksize), cost
