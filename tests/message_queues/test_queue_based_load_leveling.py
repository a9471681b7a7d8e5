"""Queue-based load leveling: the unbounded backlog and the flag stop break; the
bounded, closable queue keeps depth and memory flat and stops cleanly."""

from __future__ import annotations

import asyncio
import queue
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from snippets.message_queues.queue_based_load_leveling import (
    AsyncWorkQueue,
    Closed,
    ThreadWorkQueue,
    level_load,
    level_load_threads,
)
from snippets.message_queues.queue_based_load_leveling.demo import (
    Order,
    arrivals,
    naive_pipeline,
    slow_store,
)

BURST = 2_000


def peak_memory(run: Callable[[], Coroutine[Any, Any, object]]) -> int:
    """Peak bytes allocated while `run` runs, as tracemalloc sees it."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        asyncio.run(run())
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_unbounded_backlog_grows_with_the_burst_and_the_flag_stop_loses_it() -> None:
    run = asyncio.run(naive_pipeline(arrivals(BURST), slow_store(8), 2, grace=1.0))
    print(f"naive: {run}")
    assert run.accepted == BURST
    assert run.peak_depth > BURST // 2  # the backlog is most of the burst
    assert run.accepted - run.handled == run.peak_depth  # the backlog is dropped


def test_flag_stop_leaves_a_waiting_consumer_stuck_in_get() -> None:
    run = asyncio.run(
        naive_pipeline(arrivals(20, every=20), slow_store(8), 3, grace=0.3)
    )
    print(f"naive, slow producer: {run}")
    assert run.handled == run.accepted == 20
    # One item is in flight at a time: its consumer sees the flag, the other
    # two are waiting in get() and never look at it again.
    assert run.stuck == 2


def test_bound_keeps_depth_at_maxsize_and_slows_the_producer() -> None:
    stats = asyncio.run(
        level_load(arrivals(BURST), slow_store(8), maxsize=50, consumers=2)
    )
    print(f"bounded: {stats}")
    assert stats.peak_depth == 50
    assert stats.producer_waits > 0
    assert stats.handled == stats.accepted == BURST
    assert stats.failed == 0


def test_bound_keeps_memory_flat() -> None:
    def naive() -> Coroutine[Any, Any, object]:
        return naive_pipeline(arrivals(BURST), slow_store(8), 2, grace=1.0)

    def bounded() -> Coroutine[Any, Any, object]:
        return level_load(arrivals(BURST), slow_store(8), maxsize=50, consumers=2)

    unbounded_peak, bounded_peak = peak_memory(naive), peak_memory(bounded)
    print(
        f"tracemalloc peak: unbounded {unbounded_peak:,} B, bounded {bounded_peak:,} B"
    )
    assert unbounded_peak > 1_000 * 1024  # at least a thousand 1 KiB payloads
    assert bounded_peak * 5 < unbounded_peak


def test_close_drains_queued_items_then_wakes_every_waiting_consumer() -> None:
    async def scenario() -> tuple[list[int], list[str]]:
        work: AsyncWorkQueue[int] = AsyncWorkQueue(maxsize=10)
        got: list[int] = []
        endings: list[str] = []

        async def consumer() -> None:
            try:
                while True:
                    got.append(await work.get())
            except Closed:
                endings.append("closed")

        tasks = [asyncio.create_task(consumer()) for _ in range(3)]
        for n in range(5):
            await work.put(n)
        await asyncio.sleep(0)  # let the consumers take the items and wait again
        await work.close()
        with pytest.raises(Closed):
            await work.put(99)
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=1.0)
        return got, endings

    got, endings = asyncio.run(scenario())
    assert sorted(got) == [0, 1, 2, 3, 4]
    assert endings == ["closed"] * 3


async def never(order: Order) -> None:
    await asyncio.Event().wait()  # a consumer stuck on a dead downstream


def test_stalled_consumers_make_the_producer_time_out_not_hang() -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        asyncio.run(
            level_load(arrivals(5), never, maxsize=2, consumers=1, put_timeout=0.3)
        )
    assert time.monotonic() - started < 5


def test_a_consumer_stuck_on_the_last_item_makes_the_drain_time_out() -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        asyncio.run(
            level_load(arrivals(1), never, maxsize=2, consumers=1, drain_timeout=0.3)
        )
    assert time.monotonic() - started < 5


def test_threads_stalled_consumers_make_the_producer_time_out() -> None:
    gate = threading.Event()

    def stuck(item: bytes) -> None:
        gate.wait(timeout=5)

    with pytest.raises(queue.Full):
        level_load_threads(payloads(10), stuck, maxsize=2, consumers=1, put_timeout=0.3)
    gate.set()  # release the daemon consumer


def test_a_failing_item_is_counted_and_the_rest_are_handled() -> None:
    async def picky(order: Order) -> None:
        if order.number % 10 == 0:
            raise ValueError(order.number)

    stats = asyncio.run(level_load(arrivals(100), picky, maxsize=5, consumers=2))
    assert (stats.handled, stats.failed) == (90, 10)


def payloads(count: int) -> Iterator[bytes]:
    for _ in range(count):
        yield bytes(1024)


def test_threads_bound_keeps_depth_and_memory_flat() -> None:
    def store(item: bytes) -> None:
        time.sleep(0.0005)  # the store's service time: slower than the producer

    def run(maxsize: int) -> tuple[int, float, int, int]:
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            stats = level_load_threads(
                payloads(1_000), store, maxsize=maxsize, consumers=2, drain_timeout=10
            )
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert stats.handled == stats.accepted == 1_000
        return stats.peak_depth, stats.producer_blocked_s, stats.producer_waits, peak

    depth, blocked_s, waits, bounded_peak = run(maxsize=16)
    # A bound as large as the burst is no bound at all.
    loose_depth, _, _, loose_peak = run(maxsize=1_000)
    print(
        f"threads: maxsize=16 depth {depth}, producer blocked {blocked_s:.3f} s "
        f"({waits} waits), peak {bounded_peak:,} B; maxsize=1000 depth "
        f"{loose_depth}, peak {loose_peak:,} B"
    )
    assert depth <= 16
    assert waits > 0 and blocked_s > 0
    assert loose_depth > 500
    assert bounded_peak * 5 < loose_peak


def test_threads_close_wakes_consumers_waiting_in_get() -> None:
    work: ThreadWorkQueue[int] = ThreadWorkQueue(maxsize=4)
    ready = threading.Barrier(4)
    results: list[str] = []
    lock = threading.Lock()

    def consumer() -> None:
        ready.wait(timeout=5)
        try:
            work.get()  # no timeout: only close() can end this wait
        except Closed:
            with lock:
                results.append("closed")

    threads = [threading.Thread(target=consumer, daemon=True) for _ in range(3)]
    for thread in threads:
        thread.start()
    ready.wait(timeout=5)  # every consumer is at get(), or about to be
    work.close()
    for thread in threads:
        thread.join(timeout=2)
    assert [thread.is_alive() for thread in threads] == [False] * 3
    assert results == ["closed"] * 3
    with pytest.raises(Closed):
        work.put(1)


def test_shutdown_path_matches_the_running_python() -> None:
    has_shutdown = hasattr(asyncio.Queue, "shutdown")
    print(f"Python {sys.version.split()[0]}: Queue.shutdown available: {has_shutdown}")
    assert has_shutdown == (sys.version_info >= (3, 13))
