"""Bounded fan-out: load many split parts with at most N requests in flight.

Splitting one artifact into many parts turns one request into hundreds. Load
them all at once and you open one connection per part: the origin's
concurrency limit answers 503, and your own process spends file descriptors
and memory on connections that only wait. The loaders here keep a request
budget:

* `load_all` (asyncio): a semaphore around each fetch inside a `TaskGroup`;
  the first failure cancels the rest.
* `load_all_threaded`: a `ThreadPoolExecutor` whose ``max_workers`` is the
  budget.

Both return the parts in the order of the names, whatever order they arrive in.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

from snippets.code_splitting.single_flight_loader import (
    FETCH_TIMEOUT,
    PartLoadError,
    fetch_part,
)
from snippets.support.code_splitting_origin import PartServer

__all__ = ["load_all", "load_all_threaded"]

V = TypeVar("V")


# --8<-- [start:unbounded]
async def load_all_unbounded(
    names: Sequence[str], fetch: Callable[[str], Awaitable[V]]
) -> list[V | BaseException]:
    """The broken version: one request per part, all of them at once."""
    return await asyncio.gather(*(fetch(n) for n in names), return_exceptions=True)


# --8<-- [end:unbounded]


# --8<-- [start:bounded]
async def load_all(
    names: Sequence[str], fetch: Callable[[str], Awaitable[V]], budget: int
) -> list[V]:
    """Fetch every part with at most ``budget`` fetches in flight.

    Args:
        names: The parts to load; the result has the same order.
        fetch: Loads one part.
        budget: The most fetches running at once; keep it at or below the
            origin's concurrency limit.

    Raises:
        ExceptionGroup: One or more fetches failed; the others were cancelled.
    """
    if budget < 1:
        raise ValueError("budget must be at least 1")
    gate = asyncio.Semaphore(budget)
    results: dict[int, V] = {}

    async def one(index: int, name: str) -> None:
        async with gate:  # waits here, without a connection, for a free slot
            results[index] = await fetch(name)

    async with asyncio.TaskGroup() as group:  # first failure cancels the rest
        for index, name in enumerate(names):
            group.create_task(one(index, name))
    return [results[i] for i in range(len(names))]


# --8<-- [end:bounded]


# --8<-- [start:threaded]
def load_all_threaded(
    names: Sequence[str],
    fetch: Callable[[str], V],
    budget: int,
    timeout: float = 60.0,
) -> list[V]:
    """The threaded version: ``budget`` worker threads, results in name order.

    Raises:
        TimeoutError: The whole load took longer than ``timeout`` seconds.
        Exception: The first failed fetch, in name order; the parts not yet
            started are cancelled when the pool shuts down.
    """
    if budget < 1:
        raise ValueError("budget must be at least 1")
    with ThreadPoolExecutor(max_workers=budget) as pool:
        try:
            return list(pool.map(fetch, names, timeout=timeout))
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


# --8<-- [end:threaded]


def _has_active(count: int, server: PartServer) -> bool:
    return server.active == count


# --8<-- [start:demo]
async def demo(parts: int = 200, budget: int = 30, server_cap: int = 30) -> list[str]:
    """Load ``parts`` parts from an origin that serves ``server_cap`` at once."""
    names = [f"{i:03d}" for i in range(parts)]
    lines = []
    for label, in_flight in (("unbounded", parts), (f"budget {budget}", budget)):
        with PartServer(max_active=server_cap) as server:
            threading.Thread(target=server.serve_forever, daemon=True).start()
            try:
                server.gate.clear()  # answer once every allowed request arrived
                fetch = partial(fetch_part, server.url)
                load: Awaitable[Sequence[object]] = (
                    load_all_unbounded(names, fetch)
                    if label == "unbounded"
                    else load_all(names, fetch, budget)
                )
                job = asyncio.ensure_future(load)
                arrived = partial(_has_active, in_flight)
                await asyncio.to_thread(server.wait_until, arrived, FETCH_TIMEOUT)
                server.gate.set()
                results = await job
            finally:
                server.shutdown()
        failed = sum(isinstance(r, PartLoadError) for r in results)
        complete = list(results) == [f"part {name}" for name in names]  # all, in order
        lines.append(
            f"{label:<10} parts={parts} peak connections={server.peak} "
            f"503s={server.rejected} failed={failed} complete={complete}"
        )
    return lines


# --8<-- [end:demo]


def show_demo() -> list[str]:
    """200 parts from an origin that serves 30 at once, without and with a budget."""
    return asyncio.run(demo())
