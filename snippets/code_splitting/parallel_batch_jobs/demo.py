"""The cases the parallel-batch-jobs page shows.

Run one with ``python -m snippets.code_splitting.parallel_batch_jobs.demo CASE``;
CASE is one of batched, bounded-fan-out, chunksize, load-balance, map-ahead,
splitter-aggregator.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from functools import partial
from itertools import islice

from snippets.code_splitting.parallel_batch_jobs.batching import batches
from snippets.code_splitting.parallel_batch_jobs.bounded_fan_out import (
    demo as fan_out_demo,
)
from snippets.code_splitting.parallel_batch_jobs.chunksize import (
    makespan,
    pick_chunksize,
    pool_map_chunksize,
)
from snippets.code_splitting.parallel_batch_jobs.lazy_map import map_bounded
from snippets.code_splitting.parallel_batch_jobs.splitter_aggregator import (
    safe_context,
    show_demo,
)
from snippets.support.cases import run_cases
from snippets.support.code_splitting_batches import (
    CountedPickles,
    CountingThreadPool,
    Pulled,
    cost_after_barrier,
    install_barrier,
    pid_after_barrier,
    work,
)

__all__: list[str] = []

ITEMS = 1000
WORKERS = 4


# --8<-- [start:chunksize]
def tasks_sent(run: Callable[[CountedPickles], object]) -> int:
    """Run ``run`` with a counting worker function; the tasks it sent."""
    counter = CountedPickles()
    run(counter)
    return counter.count


def chunksize_counts(items: int = ITEMS, workers: int = WORKERS) -> list[str]:
    """Tasks sent to the workers for ``items`` cheap items, per API and chunksize."""
    context = safe_context()
    computed = pick_chunksize(items, workers)
    data = range(items)
    counts = {}
    with context.Pool(workers) as pool:
        counts["Pool.map, default"] = tasks_sent(lambda f: pool.map(f, data))
        counts[f"Pool.map, chunksize={items}"] = tasks_sent(
            lambda f: pool.map(f, data, chunksize=items)
        )
        counts["Pool.imap, default"] = tasks_sent(lambda f: list(pool.imap(f, data)))
        counts["Pool.imap_unordered, default"] = tasks_sent(
            lambda f: list(pool.imap_unordered(f, data))
        )
    with ProcessPoolExecutor(workers, mp_context=context) as executor:
        for size in (1, computed):
            counts[f"ProcessPoolExecutor.map, chunksize={size}"] = tasks_sent(
                lambda f: list(executor.map(f, data, chunksize=size))  # noqa: B023
            )
    with CountingThreadPool(workers) as threads:
        list(threads.map(work, data, chunksize=computed))
    counts[f"ThreadPoolExecutor.map, chunksize={computed}"] = threads.submitted
    lines = [f"{items} items, {workers} worker processes"]
    lines += [f"{label:<40} tasks: {count}" for label, count in counts.items()]
    lines.append(
        f"Pool.map's default chunksize here: {pool_map_chunksize(items, workers)}"
    )
    return lines


# --8<-- [end:chunksize]


# --8<-- [start:load-balance]
def load_balance(workers: int = WORKERS) -> list[str]:
    """Ten slow items first, thirty fast ones: who gets the slow ones."""
    costs = [10] * 10 + [1] * 30  # e.g. files sorted by size, largest first
    context = safe_context()
    lines = [f"{len(costs)} items, costs {sum(costs)} units, {workers} workers"]
    for chunksize, chunks in ((10, 4), (20, 2)):
        with context.Pool(
            workers, initializer=install_barrier, initargs=(context.Barrier(chunks),)
        ) as pool:
            done = pool.map(
                partial(cost_after_barrier, chunksize=chunksize),
                list(enumerate(costs)),
                chunksize,
            )
        units = Counter[int]()
        slow = Counter[int]()
        for pid, cost in done:
            units[pid] += cost
            slow[pid] += cost > 1
        per_worker = sorted(units.values(), reverse=True)
        per_worker += [0] * (workers - len(per_worker))
        lines.append(
            f"chunksize={chunksize}: chunks={chunks} workers used={len(units)} "
            f"idle={workers - len(units)} slow items per worker="
            f"{sorted(slow.values(), reverse=True) + [0] * (workers - len(slow))} "
            f"units per worker={per_worker}"
        )
    for chunksize in (20, 10, pool_map_chunksize(len(costs), workers), 1):
        finish, last = makespan(costs, chunksize, workers)
        lines.append(
            f"replayed, chunksize={chunksize}: finishes at {finish} units "
            f"(ideal {-(-sum(costs) // workers)}), last worker: {last}"
        )
    return lines


# --8<-- [end:load-balance]


def fewer_chunks_than_workers(items: int = 8, workers: int = WORKERS) -> int:
    """Workers that got a chunk when 8 items go out in chunks of 4."""
    chunksize = 4
    context = safe_context()
    with context.Pool(
        workers, initializer=install_barrier, initargs=(context.Barrier(2),)
    ) as pool:
        pids = pool.map(
            partial(pid_after_barrier, chunksize=chunksize), range(items), chunksize
        )
    return len(set(pids))


# --8<-- [start:batched]
def batched_cases() -> list[str]:
    """`batches` on every Python: lazy, short last batch, strict."""
    lines = [" ".join("".join(b) for b in batches("ABCDEFG", 3))]
    source = Pulled(iter(range(100)))
    first = next(batches(source, 3))
    lines.append(f"first batch {first}, items pulled so far: {source.count}")
    try:
        for batch in batches("ABCDEFG", 3, strict=True):
            lines.append(f"strict: {''.join(batch)}")
    except ValueError as error:
        lines.append(f"strict: ValueError: {error}")
    with CountingThreadPool(WORKERS) as pool:
        sums = list(pool.map(sum, batches(range(ITEMS), 250)))
    lines.append(
        f"4 batches of 250 to a thread pool: futures={pool.submitted}, sums={sums}"
    )
    return lines


# --8<-- [end:batched]


# --8<-- [start:map-ahead]
def map_ahead(items: int = 10_000, buffersize: int = 8) -> list[str]:
    """Items pulled from the input before the first result is consumed."""
    lines = []
    with ThreadPoolExecutor(2) as pool:
        source = Pulled(iter(range(items)))
        results = pool.map(work, source)
        lines.append(
            f"Executor.map: pulled {source.count} of {items} before the first result"
        )
        list(results)
        endless = Pulled(limit=items)  # an endless generator, stopped by a guard
        try:
            pool.map(work, endless)
        except RuntimeError as error:
            lines.append(f"Executor.map, endless input: never returned ({error})")
        source = Pulled(iter(range(items)))
        bounded = map_bounded(pool, work, source, buffersize)
        lines.append(f"map_bounded: pulled {source.count} before the first next()")
        first = next(bounded)
        lines.append(f"map_bounded: pulled {source.count} when the first result came")
        rest = list(bounded)
        in_order = [first, *rest] == [work(i) for i in range(items)]
        lines.append(
            f"map_bounded: {1 + len(rest)} results, in input order: {in_order}"
        )
        endless = Pulled(limit=items)
        taken = list(islice(map_bounded(pool, work, endless, buffersize), 20))
        lines.append(
            f"map_bounded, endless input: took {len(taken)}, pulled {endless.count}"
        )
    return lines


# --8<-- [end:map-ahead]


def show_chunksize() -> list[str]:
    """Tasks per API and chunksize, and idle workers with fewer chunks."""
    lines = chunksize_counts()
    used = fewer_chunks_than_workers()
    lines.append(
        f"8 items in chunks of 4 on {WORKERS} workers: "
        f"workers used={used} idle={WORKERS - used}"
    )
    return lines


def show_fan_out() -> list[str]:
    """200 parts from an origin that serves 30 at once, without and with a budget."""
    return asyncio.run(fan_out_demo())


if __name__ == "__main__":
    sys.exit(
        run_cases(
            {
                "batched": batched_cases,
                "bounded-fan-out": show_fan_out,
                "chunksize": show_chunksize,
                "load-balance": load_balance,
                "map-ahead": map_ahead,
                "splitter-aggregator": show_demo,
            }
        )
    )
