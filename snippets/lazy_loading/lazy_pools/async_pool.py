"""The asyncio versions: `AsyncLazyPool` and `AsyncDatabase`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from snippets.lazy_loading.lazy_pools.errors import PoolClosed, PoolTimeout
from snippets.lazy_loading.thread_safe_lazy_init import AsyncOnce

__all__ = ["AsyncConnection", "AsyncDatabase", "AsyncLazyPool"]

AsyncConnection = psycopg.AsyncConnection[Any]

_OPEN_TRANSACTION = (TransactionStatus.INTRANS, TransactionStatus.INERROR)


# --8<-- [start:async-pool]
class AsyncLazyPool:
    """The asyncio version of `LazyPool`; use it from one event loop."""

    def __init__(
        self,
        conninfo: str,
        *,
        max_size: int,
        acquire_timeout: float = 5.0,
        connect_timeout: int = 5,
        **kwargs: Any,
    ) -> None:
        self.max_size = max_size
        self.acquire_timeout = acquire_timeout
        self._conninfo = conninfo
        self._kwargs = {"connect_timeout": connect_timeout, **kwargs}
        self._slots: asyncio.LifoQueue[AsyncConnection | None] = asyncio.LifoQueue()
        for _ in range(max_size):
            self._slots.put_nowait(None)
        self._closed = False
        self.size = 0
        self.waiting = 0

    @asynccontextmanager
    async def connection(
        self, timeout: float | None = None
    ) -> AsyncIterator[AsyncConnection]:
        """Lend a connection for the duration of an ``async with`` block."""
        conn = await self._take(self.acquire_timeout if timeout is None else timeout)
        try:
            yield conn
        finally:
            await self._give_back(conn)

    # --8<-- [end:async-pool]

    # --8<-- [start:async-take]
    async def _take(self, timeout: float) -> AsyncConnection:
        self.waiting += 1
        try:
            async with asyncio.timeout(timeout):
                slot = await self._slots.get()  # cancellation-safe
        except TimeoutError:
            raise PoolTimeout(f"no connection free in {timeout} s") from None
        finally:
            self.waiting -= 1
        if self._closed:
            self._slots.put_nowait(slot)
            raise PoolClosed("the pool is closed")
        if slot is not None:
            return slot
        try:
            conn = await psycopg.AsyncConnection.connect(self._conninfo, **self._kwargs)
        except BaseException:  # including CancelledError: keep the slot
            self._slots.put_nowait(None)
            raise
        self.size += 1
        return conn

    async def _give_back(self, conn: AsyncConnection) -> None:
        reusable = False
        try:
            reusable = await self._reusable(conn)
        finally:  # even if cancelled during the rollback: the slot comes back
            if reusable:
                self._slots.put_nowait(conn)
            else:
                self.size -= 1
                self._slots.put_nowait(None)
                await conn.close()  # a connection cut off mid-rollback is unusable

    async def _reusable(self, conn: AsyncConnection) -> bool:
        if self._closed or conn.closed or conn.broken:
            return False
        if conn.info.transaction_status in _OPEN_TRANSACTION:
            try:
                await conn.rollback()
            except psycopg.Error:
                return False
        return conn.info.transaction_status == TransactionStatus.IDLE

    # --8<-- [end:async-take]

    async def warm(self, count: int = 1) -> AsyncLazyPool:
        """Open `count` connections now, to fail fast if the server is down."""
        taken = [await self._take(self.acquire_timeout) for _ in range(count)]
        for conn in taken:
            await self._give_back(conn)
        return self

    async def close(self) -> None:
        """Close idle connections now, the others when they come back."""
        self._closed = True
        drained: list[AsyncConnection | None] = []
        while not self._slots.empty():
            drained.append(self._slots.get_nowait())
        for slot in drained:
            if slot is not None:
                await slot.close()
                self.size -= 1
        self._slots.put_nowait(None)  # wakes a waiter, which wakes the next


# --8<-- [start:async-database]
class AsyncDatabase:
    """The asyncio version of `Database`: one pool, created by the first task.

    `AsyncOnce` shares one creation between every task that asks while it
    runs; a task that is cancelled while waiting does not cancel it.
    """

    def __init__(self, create: Callable[[], Awaitable[AsyncLazyPool]]) -> None:
        self._pool = AsyncOnce(create)
        self._created = False

    async def pool(self) -> AsyncLazyPool:
        """The pool, created by the first task that asks."""
        pool = await self._pool.get()
        self._created = True
        return pool

    async def close(self) -> None:
        """Close the pool if it was ever created."""
        if self._created:
            await (await self._pool.get()).close()


# --8<-- [end:async-database]
