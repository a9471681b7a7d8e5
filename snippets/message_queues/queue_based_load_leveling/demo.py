"""The cases the queue-based load leveling page shows.

    python -m snippets.message_queues.queue_based_load_leveling.demo break
    python -m snippets.message_queues.queue_based_load_leveling.demo pattern

``naive_pipeline`` is the unbounded queue with a stop flag; the simulation is a
burst of orders and a store that takes several turns per order.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from snippets.message_queues.queue_based_load_leveling import level_load
from snippets.support.cases import run_cases

__all__: list[str] = []

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


if __name__ == "__main__":
    sys.exit(
        run_cases(
            {
                "break": lambda: asyncio.run(break_demo()),
                "pattern": lambda: asyncio.run(pattern_demo()),
            }
        )
    )
