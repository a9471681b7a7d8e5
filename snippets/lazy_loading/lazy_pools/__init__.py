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

from snippets.lazy_loading.lazy_pools.async_pool import (
    AsyncConnection,
    AsyncDatabase,
    AsyncLazyPool,
)
from snippets.lazy_loading.lazy_pools.database import Database
from snippets.lazy_loading.lazy_pools.errors import PoolClosed, PoolTimeout
from snippets.lazy_loading.lazy_pools.pool import Connection, LazyPool

__all__ = [
    "AsyncConnection",
    "AsyncDatabase",
    "AsyncLazyPool",
    "Connection",
    "Database",
    "LazyPool",
    "PoolClosed",
    "PoolTimeout",
]
