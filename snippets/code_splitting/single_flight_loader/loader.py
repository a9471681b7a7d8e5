"""One in-flight load per key, shared by every caller (asyncio and threads)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from snippets.code_splitting.single_flight_loader.fetch import FETCH_TIMEOUT

__all__ = ["SingleFlightLoader", "ThreadSingleFlightLoader"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


# --8<-- [start:loader]
class SingleFlightLoader(Generic[K, V]):
    """Load each key once; concurrent callers share the in-flight load.

    A finished load stays memoized. A failed or cancelled load is evicted, so
    its callers get the error once and the next call starts a new attempt.
    A caller that is cancelled stops waiting without cancelling the load.
    Use one instance from one event loop.

    Args:
        load: Fetches one part. Runs at most once at a time per key.
    """

    def __init__(self, load: Callable[[K], Awaitable[V]]) -> None:
        self._load = load
        self._tasks: dict[K, asyncio.Task[V]] = {}

    async def get(self, key: K) -> V:
        """Return the part for ``key``, starting a load only if none exists."""
        task = self._tasks.get(key)
        if task is None:  # no await between this check and the insert
            task = asyncio.ensure_future(self._load(key))
            self._tasks[key] = task
            task.add_done_callback(lambda t: self._evict_failed(key, t))
        return await asyncio.shield(task)

    def _evict_failed(self, key: K, task: asyncio.Task[V]) -> None:
        failed = task.cancelled() or task.exception() is not None
        if failed and self._tasks.get(key) is task:  # never evict a newer attempt
            del self._tasks[key]


# --8<-- [end:loader]


# --8<-- [start:threaded]
class ThreadSingleFlightLoader(Generic[K, V]):
    """The threaded version: the first caller loads, the others wait for it.

    Args:
        load: Fetches one part (blocking).
        timeout: How long a waiting caller waits for another caller's load.
    """

    def __init__(self, load: Callable[[K], V], timeout: float = FETCH_TIMEOUT) -> None:
        self._load = load
        self._timeout = timeout
        self._lock = threading.Lock()
        self._futures: dict[K, concurrent.futures.Future[V]] = {}

    def get(self, key: K) -> V:
        """Return the part for ``key``; only one thread fetches it at a time."""
        with self._lock:
            future = self._futures.get(key)
            leader = future is None
            if future is None:
                future = self._futures[key] = concurrent.futures.Future()
        if not leader:
            return future.result(timeout=self._timeout)
        try:
            value = self._load(key)
        except BaseException as exc:
            with self._lock:
                del self._futures[key]  # evict: the next call retries
            future.set_exception(exc)
            raise
        future.set_result(value)
        return value


# --8<-- [end:threaded]
