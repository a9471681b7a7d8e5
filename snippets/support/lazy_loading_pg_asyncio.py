"""Asyncio scenarios of the lazy-pools demo and tests, on a real PostgreSQL.

The same storm and creation race as the thread scenarios, with tasks on one
event loop: a connection per request or one lazily created async pool, and a
check-then-act pool getter that every task arriving during its await gets past.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import psycopg

from snippets.lazy_loading.lazy_pools import (
    AsyncDatabase,
    AsyncLazyPool,
    Connection,
    PoolTimeout,
)
from snippets.support.lazy_loading_pg_server import (
    LIMIT,
    RACERS,
    REQUESTS,
    App,
    Race,
    Result,
    connections,
    until,
    wait_for,
)

__all__ = [
    "NaiveAsyncDatabase",
    "async_creation_race",
    "async_pooled_storm",
    "async_unpooled_storm",
]


@dataclass
class AsyncBurst:
    release: asyncio.Event = field(default_factory=asyncio.Event)
    holding: int = 0
    served: int = 0
    failed: list[str] = field(default_factory=list)

    async def work(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute("SELECT 1")
        self.holding += 1
        await self.release.wait()
        self.served += 1


async def async_storm(
    admin: Connection,
    app: App,
    request: Callable[[AsyncBurst], Coroutine[Any, Any, None]],
    queued: Callable[[], int] = lambda: 0,
) -> Result:
    burst = AsyncBurst()
    tasks: list[asyncio.Task[None]] = []
    for arrived in range(1, REQUESTS + 1):
        tasks.append(asyncio.create_task(request(burst)))
        await until(lambda n=arrived: burst.holding + len(burst.failed) + queued() == n)  # type: ignore[misc]
    peak = await asyncio.to_thread(connections, admin, app.name)
    waiting = queued()
    burst.release.set()
    async with asyncio.timeout(15):
        await asyncio.gather(*tasks)
    return Result(peak, burst.served, burst.failed, waiting)


async def async_unpooled_storm(admin: Connection, app: App) -> Result:
    async def request(burst: AsyncBurst) -> None:
        try:
            async with await psycopg.AsyncConnection.connect(
                app.dsn, connect_timeout=5
            ) as conn:
                await burst.work(conn)
        except psycopg.OperationalError as error:
            burst.failed.append(str(error))

    return await async_storm(admin, app, request)


async def async_pooled_storm(admin: Connection, app: App) -> Result:
    async def create() -> AsyncLazyPool:
        return AsyncLazyPool(app.dsn, max_size=LIMIT, acquire_timeout=10)

    db = AsyncDatabase(create)
    pool = await db.pool()

    async def request(burst: AsyncBurst) -> None:
        try:
            async with (await db.pool()).connection() as conn:
                await burst.work(conn)
        except (psycopg.OperationalError, PoolTimeout) as error:
            burst.failed.append(str(error))

    try:
        result = await async_storm(admin, app, request, queued=lambda: pool.waiting)
        assert pool.size == LIMIT
    finally:
        await db.close()
    return result


class NaiveAsyncDatabase:
    """Check-then-act across an await: every task that arrives meanwhile creates."""

    def __init__(self, create: Callable[[], Awaitable[AsyncLazyPool]]) -> None:
        self._create = create
        self._pool: AsyncLazyPool | None = None

    async def pool(self) -> AsyncLazyPool:
        if self._pool is None:
            self._pool = await self._create()
        return self._pool


async def async_creation_race(
    admin: Connection,
    app: App,
    make_db: Callable[..., NaiveAsyncDatabase | AsyncDatabase],
) -> Race:
    created: list[AsyncLazyPool] = []
    entered = 0
    all_in = asyncio.Event()

    async def create() -> AsyncLazyPool:
        nonlocal entered
        entered += 1
        if entered == RACERS:
            all_in.set()
        try:  # with AsyncOnce only one task gets here: it stops waiting
            await asyncio.wait_for(all_in.wait(), timeout=0.3)
        except TimeoutError:
            pass
        pool = await AsyncLazyPool(app.dsn, max_size=LIMIT).warm(1)
        created.append(pool)
        return pool

    db = make_db(create)
    async with asyncio.timeout(15):
        await asyncio.gather(*(db.pool() for _ in range(RACERS)))
    opened = await asyncio.to_thread(connections, admin, app.name)
    await (await db.pool()).close()
    expected = sum(p.size for p in created)
    await asyncio.to_thread(wait_for, lambda: connections(admin, app.name) == expected)
    left = await asyncio.to_thread(connections, admin, app.name)
    for pool in created:
        await pool.close()
    return Race(len(created), opened, left)
