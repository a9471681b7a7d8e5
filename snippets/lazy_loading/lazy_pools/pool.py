"""`LazyPool`: at most `max_size` connections, each opened on first use."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from snippets.lazy_loading.lazy_pools.errors import PoolClosed, PoolTimeout

__all__ = ["Connection", "LazyPool", "handle_unpooled"]

Connection = psycopg.Connection[Any]

_OPEN_TRANSACTION = (TransactionStatus.INTRANS, TransactionStatus.INERROR)


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
