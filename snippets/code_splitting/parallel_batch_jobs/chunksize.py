"""How many items each task carries: ``chunksize`` for process pools.

Every task sent to a worker process is pickled, written to a pipe, read and
unpickled, and its result travels back the same way. Sending one item per task
pays that cost per item; sending a few large chunks pays it rarely but lets one
worker end up with all the slow items while the others sit idle.

* `pool_map_chunksize` is the default ``multiprocessing.Pool.map`` computes
  (CPython 3.11 to 3.13): about four chunks per worker process.
* `pick_chunksize` is the same rule for ``ProcessPoolExecutor.map``, whose
  default ``chunksize`` is 1.
* `makespan` replays a chunk plan on ``workers`` workers without running
  anything, in cost units, to show what a chunk size does to the finish time.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

__all__ = ["makespan", "map_in_chunks", "pick_chunksize", "pool_map_chunksize"]

T = TypeVar("T")
R = TypeVar("R")


# --8<-- [start:default]
def pool_map_chunksize(items: int, processes: int) -> int:
    """The ``chunksize`` that ``Pool.map(func, iterable)`` uses when none is given.

    CPython's ``Pool._map_async``: ``divmod(len(iterable), len(self._pool) * 4)``,
    plus one if there is a remainder; 0 for an empty iterable.
    """
    if items == 0:
        return 0
    chunksize, extra = divmod(items, processes * 4)
    return chunksize + 1 if extra else chunksize


# --8<-- [end:default]


# --8<-- [start:pick]
def pick_chunksize(items: int, workers: int, per_worker: int = 4) -> int:
    """About ``per_worker`` chunks per worker, never less than one item a chunk.

    The rule of ``Pool.map``. Raise ``per_worker`` when item costs vary a lot
    (smaller chunks balance better); lower it when items are tiny and uniform.
    """
    if workers < 1 or per_worker < 1:
        raise ValueError("workers and per_worker must be at least 1")
    return max(1, -(-items // (workers * per_worker)))  # ceiling division


def map_in_chunks(
    pool: ProcessPoolExecutor,
    fn: Callable[[T], R],
    items: Sequence[T],
    workers: int,
    timeout: float | None = None,
) -> Iterator[R]:
    """``pool.map`` with a computed ``chunksize`` instead of the default 1."""
    chunksize = pick_chunksize(len(items), workers)
    return pool.map(fn, items, timeout=timeout, chunksize=chunksize)


# --8<-- [end:pick]


# --8<-- [start:makespan]
def makespan(costs: Iterable[int], chunksize: int, workers: int) -> tuple[int, int]:
    """(finish time, worker that finishes last) of a chunk plan, in cost units.

    Chunks go out in input order, each to the worker that is free first (the
    lowest-numbered one on a tie), as a pool's workers take the next task
    from one shared queue when they finish the last.
    """
    costs = list(costs)
    chunk_costs = [
        sum(costs[start : start + chunksize])
        for start in range(0, len(costs), chunksize)
    ]
    free_at = [(0, worker) for worker in range(workers)]  # (time free, worker)
    finish = [0] * workers
    for cost in chunk_costs:
        time, worker = heapq.heappop(free_at)
        finish[worker] = time + cost
        heapq.heappush(free_at, (finish[worker], worker))
    last = max(range(workers), key=lambda worker: (finish[worker], -worker))
    return finish[last], last


# --8<-- [end:makespan]
