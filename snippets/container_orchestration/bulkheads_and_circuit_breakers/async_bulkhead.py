"""The asyncio bulkhead: a cap per dependency on one event loop's calls.

`AsyncBulkhead` is a semaphore with an acquire timeout; `AsyncGateway` runs
each call under its dependency's bulkhead and the caller's deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping

from .bulkhead import (
    BulkheadFull,
    DeadlineExceeded,
)
from .clients import (
    async_http_get,
)

__all__ = ["AsyncBulkhead", "AsyncGateway"]


# --8<-- [start:async-bulkhead]
class AsyncBulkhead:
    """The asyncio bulkhead: a bounded semaphore with an acquire timeout.

    Use one instance from one event loop.

    Args:
        name: The dependency, for errors and metrics.
        max_concurrent: Slots: the most calls this dependency may hold.
        acquire_timeout: How long a call waits for a free slot before it
            fails with `BulkheadFull`.
    """

    def __init__(self, name: str, max_concurrent: int, acquire_timeout: float) -> None:
        self.name = name
        self.max_concurrent = max_concurrent
        self.rejected = 0
        self._slots = asyncio.BoundedSemaphore(max_concurrent)
        self._acquire_timeout = acquire_timeout

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a slot for an `async with` block, or raise `BulkheadFull`."""
        try:
            async with asyncio.timeout(self._acquire_timeout):
                await self._slots.acquire()
        except TimeoutError:
            self.rejected += 1
            raise BulkheadFull(
                f"{self.name}: {self.max_concurrent} in flight"
            ) from None
        try:
            yield
        finally:
            self._slots.release()  # also when the caller is cancelled


# --8<-- [end:async-bulkhead]


# --8<-- [start:async-gateway]
class AsyncGateway:
    """Outbound calls from one event loop under one shared concurrency limit.

    `limit` plays the part of an HTTP client's connection pool. Without
    bulkheads, a hanging dependency holds every permit, and calls to healthy
    dependencies wait for one until their deadline passes.
    """

    def __init__(
        self,
        limit: int,
        call_timeout: float,
        bulkheads: Mapping[str, AsyncBulkhead] | None = None,
    ) -> None:
        self.limit = limit
        self.bulkheads = dict(bulkheads or {})
        self._shared = asyncio.Semaphore(limit)
        self._call_timeout = call_timeout

    async def call(self, dependency: str, url: str, deadline: float) -> bytes:
        """Call `url` within `deadline` seconds, bulkhead first, then the pool."""
        bulkhead = self.bulkheads.get(dependency)
        slot = bulkhead.slot() if bulkhead else contextlib.nullcontext()
        try:
            async with asyncio.timeout(deadline):
                async with slot, self._shared:
                    return await async_http_get(url, self._call_timeout)
        except TimeoutError:  # async_http_get wraps its own timeouts
            raise DeadlineExceeded(f"{dependency}: over {deadline} s") from None


# --8<-- [end:async-gateway]
