"""Lazy, bounded connection pools: connect on first use, never past max_size.

Deferring connections until the first request keeps start-up cheap, and
moves the cost to the moment many requests arrive at once. Without care,
each of them opens its own connection (a connection storm), or two of them
each create "the" pool.

* `LazyPool` holds `max_size` slots. A slot is an open connection or an
  empty placeholder that is connected only when a caller takes it, so the
  pool opens no more connections than callers use at the same time, and never
  more than `max_size`. A caller past the bound waits, for a bounded time.
* `Database` creates the pool on first use, exactly once, with `Once`;
  `AsyncDatabase` does the same for asyncio with `AsyncOnce`.
* `AsyncLazyPool` is the asyncio version of `LazyPool`.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from snippets.lazy_loading.thread_safe_lazy_init import AsyncOnce, Once

Connection = psycopg.Connection[Any]
AsyncConnection = psycopg.AsyncConnection[Any]

_OPEN_TRANSACTION = (TransactionStatus.INTRANS, TransactionStatus.INERROR)


class PoolTimeout(Exception):
    """No connection became free within the acquire timeout."""


class PoolClosed(Exception):
    """The pool was closed."""


# --8<-- [start:unpooled]
def handle_unpooled(conninfo: str, work: Callable[[Connection], None]) -> None:
    """The broken version, kept for the tests: one new connection per request."""
    with psycopg.connect(conninfo, connect_timeout=5) as conn:  # N requests,
        work(conn)  # N server connections, however many the server allows


# --8<-- [end:unpooled]


# --8<-- [start:pool]
class LazyPool:
    """At most `max_size` connections, opened on demand and reused.

    Args:
        conninfo: libpq connection string or URL.
        max_size: The most connections the pool ever holds open at once.
        acquire_timeout: Seconds a caller waits for a free connection before
            `PoolTimeout`.
        connect_timeout: Seconds libpq may take to open one connection.
        **kwargs: Passed to `psycopg.connect` (for example ``autocommit``).
    """

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
        # LIFO: the most recently used connection is reused first, and empty
        # slots (None) are connected only when every open one is busy.
        self._slots: queue.LifoQueue[Connection | None] = queue.LifoQueue()
        for _ in range(max_size):
            self._slots.put(None)
        self._lock = threading.Lock()
        self._closed = False
        self.size = 0  # connections open now
        self.waiting = 0  # callers waiting for a slot

    # --8<-- [end:pool]

    # --8<-- [start:take]
    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[Connection]:
        """Lend a connection for the duration of a ``with`` block.

        Raises:
            PoolTimeout: None became free within `timeout` (default:
                ``acquire_timeout``) seconds.
            PoolClosed: The pool is closed.
            psycopg.OperationalError: Opening a new connection failed.
        """
        conn = self._take(self.acquire_timeout if timeout is None else timeout)
        try:
            yield conn
        finally:
            self._give_back(conn)

    def _take(self, timeout: float) -> Connection:
        with self._lock:
            self.waiting += 1
        try:
            slot = self._slots.get(timeout=timeout)
        except queue.Empty:
            raise PoolTimeout(f"no connection free in {timeout} s") from None
        finally:
            with self._lock:
                self.waiting -= 1
        if self._closed:
            self._slots.put(slot)  # wake the next waiter: it fails the same way
            raise PoolClosed("the pool is closed")
        if slot is not None:
            return slot
        try:
            conn = psycopg.connect(self._conninfo, **self._kwargs)  # lazily
        except BaseException:
            self._slots.put(None)  # give the slot back, or the pool shrinks
            raise
        with self._lock:
            self.size += 1
        return conn

    # --8<-- [end:take]

    # --8<-- [start:give-back]
    def _give_back(self, conn: Connection) -> None:
        if self._reusable(conn):
            self._slots.put(conn)
            return
        conn.close()  # broken, busy or closing: drop it, keep the slot
        with self._lock:
            self.size -= 1
        self._slots.put(None)

    def _reusable(self, conn: Connection) -> bool:
        if self._closed or conn.closed or conn.broken:
            return False
        if conn.info.transaction_status in _OPEN_TRANSACTION:
            try:
                conn.rollback()  # never lend out someone else's transaction
            except psycopg.Error:
                return False
        return conn.info.transaction_status == TransactionStatus.IDLE

    # --8<-- [end:give-back]

    def warm(self, count: int = 1) -> LazyPool:
        """Open `count` connections now, to fail fast if the server is down."""
        taken = [self._take(self.acquire_timeout) for _ in range(count)]
        for conn in taken:
            self._give_back(conn)
        return self

    def close(self) -> None:
        """Close idle connections now, the others when they come back.

        Callers waiting for a connection get `PoolClosed`.
        """
        self._closed = True
        drained: list[Connection | None] = []
        while True:
            try:
                drained.append(self._slots.get_nowait())
            except queue.Empty:
                break
        for slot in drained:
            if slot is not None:
                slot.close()
                with self._lock:
                    self.size -= 1
        self._slots.put(None)  # wakes a waiter, which fails and wakes the next


# --8<-- [start:naive-lazy]
class NaiveDatabase:
    """The broken version, kept for the tests: check-then-act pool creation."""

    def __init__(self, create: Callable[[], LazyPool]) -> None:
        self._create = create
        self._pool: LazyPool | None = None

    def pool(self) -> LazyPool:
        """The pool; several, if several requests ask before the first returns."""
        if self._pool is None:  # every request that arrives now sees None
            self._pool = self._create()  # ... and each one creates a pool
        return self._pool


# --8<-- [end:naive-lazy]


# --8<-- [start:database]
class Database:
    """The process's one pool, created on first use.

    `Once` runs `create` exactly once, however many threads ask at the same
    moment; if it raises, nothing is stored and the next caller tries again.

    Args:
        create: Builds the pool, for example ``LazyPool(...).warm()``.
    """

    def __init__(self, create: Callable[[], LazyPool]) -> None:
        self._pool = Once(create)

    def pool(self) -> LazyPool:
        """The pool, created by the first caller."""
        return self._pool.get()

    def close(self) -> None:
        """Close the pool if it was ever created."""
        if self._pool.initialized:
            self._pool.get().close()


# --8<-- [end:database]


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
