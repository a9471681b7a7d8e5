"""The asyncio version: a bounded queue that can be closed, and the pipeline."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Generic, TypeVar

from snippets.message_queues.queue_based_load_leveling.common import (
    _SHUT_DOWN,
    _STOP,
    Closed,
    Stats,
    _Stop,
)

__all__ = ["AsyncWorkQueue", "consume", "level_load", "produce"]

T = TypeVar("T")


# --8<-- [start:async-queue]
class AsyncWorkQueue(Generic[T]):
    """A bounded asyncio queue that can be closed: consumers drain it, then stop.

    Call `close()` once every producer has finished. On Python 3.13+ it is
    `asyncio.Queue.shutdown()`; on 3.11 and 3.12 a closed flag refuses new
    items and one sentinel, passed on by each consumer that sees it, stops them all.
    """

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1: the bound is the point")
        self._queue: asyncio.Queue[T | _Stop] = asyncio.Queue(maxsize)
        self._closed = False

    async def put(self, item: T, timeout: float | None = None) -> None:
        """Add an item, waiting while the queue is full: this is the backpressure.

        Raises:
            TimeoutError: the queue stayed full for `timeout` seconds.
            Closed: the queue was closed.
        """
        if self._closed:
            raise Closed
        try:
            async with asyncio.timeout(timeout):
                await self._queue.put(item)
        except _SHUT_DOWN:
            raise Closed from None

    # --8<-- [end:async-queue]
    # --8<-- [start:async-close]
    async def get(self) -> T:
        """Take the next item; raise `Closed` once the queue is closed and empty."""
        try:
            item = await self._queue.get()
        except _SHUT_DOWN:
            raise Closed from None
        if isinstance(item, _Stop):
            self._queue.put_nowait(item)  # room is certain: we just took one out
            raise Closed
        return item

    async def close(self) -> None:
        """Accept no more items; consumers stop after the last queued one."""
        if not self._closed:
            self._closed = True
            if sys.version_info >= (3, 13):
                self._queue.shutdown()
            else:
                await self._queue.put(_STOP)  # waits for room, like any producer

    # --8<-- [end:async-close]
    def qsize(self) -> int:
        """Items waiting in the queue."""
        return self._queue.qsize()

    def full(self) -> bool:
        """True when a `put()` would wait."""
        return self._queue.full()


# --8<-- [start:async-pipeline]
async def produce(
    source: AsyncIterable[T], work: AsyncWorkQueue[T], stats: Stats, timeout: float
) -> None:
    """Feed the queue; while it is full, `put()` waits and the producer slows down."""
    async for item in source:
        stats.producer_waits += work.full()
        started = time.perf_counter()
        await work.put(item, timeout)  # TimeoutError if the consumers are stalled
        stats.producer_blocked_s += time.perf_counter() - started
        stats.accepted += 1
        stats.peak_depth = max(stats.peak_depth, work.qsize())


async def consume(
    work: AsyncWorkQueue[T], handle: Callable[[T], Awaitable[None]], stats: Stats
) -> None:
    """Handle items until the queue is closed and drained; a bad item stops nothing."""
    while True:
        try:
            item = await work.get()
        except Closed:
            return
        try:
            await handle(item)
        except Exception:  # count it and go on (see poison messages)
            stats.failed += 1
        else:
            stats.handled += 1


# --8<-- [end:async-pipeline]


# --8<-- [start:level-load]
async def level_load(
    source: AsyncIterable[T],
    handle: Callable[[T], Awaitable[None]],
    *,
    maxsize: int,
    consumers: int,
    put_timeout: float = 30.0,
    drain_timeout: float = 30.0,
) -> Stats:
    """Run `consumers` workers behind a queue of `maxsize` items, then drain and stop.

    Raises:
        TimeoutError: the queue stayed full for `put_timeout` seconds (the
            consumers stalled), or was not drained within `drain_timeout`.
    """
    work: AsyncWorkQueue[T] = AsyncWorkQueue(maxsize)
    stats = Stats()
    workers = [
        asyncio.create_task(consume(work, handle, stats)) for _ in range(consumers)
    ]
    try:
        await produce(source, work, stats, put_timeout)
        async with asyncio.timeout(drain_timeout):
            await work.close()
            await asyncio.gather(*workers)  # each returns once the queue is empty
    finally:
        for worker in workers:
            worker.cancel()  # nothing to do after a clean drain; stops them on error
        await asyncio.gather(*workers, return_exceptions=True)
    return stats


# --8<-- [end:level-load]
