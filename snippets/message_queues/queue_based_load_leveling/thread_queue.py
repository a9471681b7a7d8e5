"""The thread version: `queue.Queue` that can be closed, and the pipeline."""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from snippets.message_queues.queue_based_load_leveling.common import (
    _SHUT_DOWN,
    _STOP,
    Closed,
    Stats,
    _Stop,
)

__all__ = ["ThreadWorkQueue", "consume_in_thread", "level_load_threads"]

T = TypeVar("T")


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
