"""Queue-based load leveling: a bounded buffer between a producer and a slower consumer.

The queue absorbs bursts so the consumer works at its own pace. Its bound turns
overload into backpressure: when the buffer is full the producer waits, instead
of memory growing with the backlog. Closing the queue lets the consumers drain
every accepted item and then stop on their own.

`AsyncWorkQueue` and `ThreadWorkQueue` use `Queue.shutdown()` on Python 3.13
and later, and a closed flag plus a sentinel with the same behaviour on
Python 3.11 and 3.12.
"""

from __future__ import annotations

import asyncio
import enum
import queue
import sys
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class NaiveRun:
    """What the unbounded, flag-stopped pipeline did."""

    accepted: int = 0
    handled: int = 0
    peak_depth: int = 0
    stuck: int = 0


# --8<-- [start:naive]
async def naive_pipeline(
    source: AsyncIterable[T],
    handle: Callable[[T], Awaitable[None]],
    consumers: int,
    grace: float,
) -> NaiveRun:
    """The version that breaks: no bound, and a stop flag instead of a shutdown."""
    backlog: asyncio.Queue[T] = asyncio.Queue()  # maxsize=0: no bound at all
    stopping = asyncio.Event()
    run = NaiveRun()

    async def consume() -> None:
        while not stopping.is_set():
            item = await backlog.get()  # a consumer waiting here never sees the flag
            await handle(item)
            run.handled += 1

    workers = [asyncio.create_task(consume()) for _ in range(consumers)]
    async for item in source:
        await backlog.put(item)  # never waits: there is always room
        run.accepted += 1
        run.peak_depth = max(run.peak_depth, backlog.qsize())
    stopping.set()  # consumers finish their item, then leave the backlog behind
    _, pending = await asyncio.wait(workers, timeout=grace)
    run.stuck = len(pending)
    for worker in pending:
        worker.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    return run


# --8<-- [end:naive]


class Closed(Exception):
    """Raised by `put()` after `close()`, and by `get()` once closed and drained."""


class _Stop(enum.Enum):
    TOKEN = enum.auto()


_STOP = _Stop.TOKEN

if sys.version_info >= (3, 13):
    _SHUT_DOWN: tuple[type[Exception], ...] = (asyncio.QueueShutDown, queue.ShutDown)
else:
    _SHUT_DOWN = ()  # catches nothing: 3.11 and 3.12 use the sentinel instead


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


@dataclass
class Stats:
    """Counts from one run of a pipeline."""

    accepted: int = 0
    handled: int = 0
    failed: int = 0
    peak_depth: int = 0
    producer_waits: int = 0
    producer_blocked_s: float = 0.0


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


# --8<-- [start:thread-queue]
class ThreadWorkQueue(Generic[T]):
    """The thread version of `AsyncWorkQueue`, built on `queue.Queue`.

    On Python 3.13+ `close()` is `queue.Queue.shutdown()`; on 3.11 and 3.12 it
    is a closed flag plus one sentinel that each consumer passes on.
    """

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1: the bound is the point")
        self._queue: queue.Queue[T | _Stop] = queue.Queue(maxsize)
        self._closed = False

    def put(self, item: T, timeout: float | None = None) -> None:
        """Add an item, blocking while full; `queue.Full` after `timeout` seconds."""
        if self._closed:
            raise Closed
        try:
            self._queue.put(item, timeout=timeout)
        except _SHUT_DOWN:
            raise Closed from None

    # --8<-- [end:thread-queue]
    # --8<-- [start:thread-close]
    def get(self, timeout: float | None = None) -> T:
        """Next item; `Closed` once closed and empty, `queue.Empty` on timeout."""
        try:
            item = self._queue.get(timeout=timeout)
        except _SHUT_DOWN:
            raise Closed from None
        if isinstance(item, _Stop):
            self._queue.put(item)  # pass the sentinel on to the next consumer
            raise Closed
        return item

    def close(self, timeout: float | None = None) -> None:
        """Accept no more items; consumers stop after the last queued one.

        Raises:
            queue.Full: 3.11 and 3.12 only: no room for the sentinel in `timeout`.
        """
        if not self._closed:
            self._closed = True
            if sys.version_info >= (3, 13):
                self._queue.shutdown()
            else:
                self._queue.put(_STOP, timeout=timeout)

    # --8<-- [end:thread-close]
    def qsize(self) -> int:
        """Approximate number of waiting items (other threads move it)."""
        return self._queue.qsize()

    def full(self) -> bool:
        """True when a `put()` would probably block."""
        return self._queue.full()


# --8<-- [start:thread-consumer]
def consume_in_thread(
    work: ThreadWorkQueue[T],
    handle: Callable[[T], None],
    stats: Stats,
    lock: threading.Lock,
) -> None:
    """`consume` for a thread: handle items until the queue is closed and drained."""
    while True:
        try:
            item = work.get()
        except Closed:
            return
        try:
            handle(item)
        except Exception:
            with lock:
                stats.failed += 1
        else:
            with lock:
                stats.handled += 1


# --8<-- [end:thread-consumer]


# --8<-- [start:thread-pipeline]
def level_load_threads(
    source: Iterable[T],
    handle: Callable[[T], None],
    *,
    maxsize: int,
    consumers: int,
    put_timeout: float = 30.0,
    drain_timeout: float = 30.0,
) -> Stats:
    """`level_load` with threads: the calling thread produces, `consumers` threads work.

    Raises:
        queue.Full: the queue stayed full for `put_timeout` seconds.
        TimeoutError: a consumer thread was still running after `drain_timeout`.
    """
    work: ThreadWorkQueue[T] = ThreadWorkQueue(maxsize)
    stats, lock = Stats(), threading.Lock()
    threads = [
        threading.Thread(target=consume_in_thread, args=(work, handle, stats, lock))
        for _ in range(consumers)
    ]
    for thread in threads:
        thread.daemon = True  # a stuck consumer must not keep the process alive
        thread.start()
    for item in source:
        stats.producer_waits += work.full()
        started = time.perf_counter()
        work.put(item, timeout=put_timeout)
        stats.producer_blocked_s += time.perf_counter() - started
        stats.accepted += 1
        stats.peak_depth = max(stats.peak_depth, work.qsize())
    deadline = time.monotonic() + drain_timeout
    work.close(timeout=drain_timeout)
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        raise TimeoutError(f"consumers still running after {drain_timeout} s")
    return stats


# --8<-- [end:thread-pipeline]


# --8<-- [start:simulation]
@dataclass(frozen=True)
class Order:
    """One unit of work, with a 1 KiB payload so the backlog's memory shows."""

    number: int
    payload: bytes


async def arrivals(count: int, every: int = 1) -> AsyncIterator[Order]:
    """`count` orders, one per `every` turns of the event loop (a busy network)."""
    for number in range(count):
        for _ in range(every):
            await asyncio.sleep(0)
        yield Order(number, bytes(1024))


def slow_store(turns: int) -> Callable[[Order], Awaitable[None]]:
    """A store write that takes `turns` turns of the event loop per order."""

    async def write(order: Order) -> None:
        for _ in range(turns):
            await asyncio.sleep(0)

    return write


# --8<-- [end:simulation]


BURST, CONSUMERS, STORE_TURNS = 2_000, 2, 8
HEADER = (
    f"{BURST:,} orders, one per turn; {CONSUMERS} consumers, {STORE_TURNS} turns each"
)


# --8<-- [start:break-demo]
async def break_demo() -> list[str]:
    """What the naive pipeline does with a fast producer, and with a slow one."""
    store, lines = slow_store(STORE_TURNS), [HEADER]
    for label, source in (
        ("fast producer", arrivals(BURST)),
        ("slow producer", arrivals(50, every=20)),
    ):
        run = await naive_pipeline(source, store, CONSUMERS, grace=0.5)
        lines.append(
            f"unbounded, {label}: peak depth {run.peak_depth:,}, "
            f"lost {run.accepted - run.handled:,}, "
            f"stuck consumers {run.stuck} of {CONSUMERS}"
        )
    return lines


# --8<-- [end:break-demo]


# --8<-- [start:pattern-demo]
async def pattern_demo() -> list[str]:
    """The same two producers through `level_load`."""
    store, lines = slow_store(STORE_TURNS), [HEADER]
    for maxsize in (50, 500):
        stats = await level_load(
            arrivals(BURST), store, maxsize=maxsize, consumers=CONSUMERS
        )
        lines.append(
            f"maxsize={maxsize}, fast producer: peak depth {stats.peak_depth:,}, "
            f"lost {stats.accepted - stats.handled:,}, "
            f"producer blocked {stats.producer_waits:,} times"
        )
    slow = await level_load(  # raises TimeoutError if a consumer does not stop
        arrivals(50, every=20),
        store,
        maxsize=50,
        consumers=CONSUMERS,
        drain_timeout=0.5,
    )
    lines.append(
        f"maxsize=50, slow producer: peak depth {slow.peak_depth}, "
        f"lost {slow.accepted - slow.handled}, all consumers stopped within 0.5 s"
    )
    return lines


# --8<-- [end:pattern-demo]
