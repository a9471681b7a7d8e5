"""PostgreSQL scenarios for the lazy-pools demo and tests.

Server connections are counted in ``pg_stat_activity`` by the
``application_name`` each scenario gives its connections. The connection
limit is real: ``limited_role`` creates a login role with ``CONNECTION LIMIT
4``, which PostgreSQL enforces for every role that is not a superuser.
Requests arrive one after another and each holds its connection until the
scenario has counted, so the counts are exact on every run.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from snippets.lazy_loading.lazy_pools import (
    AsyncDatabase,
    AsyncLazyPool,
    Connection,
    Database,
    LazyPool,
    PoolTimeout,
)
from snippets.lazy_loading.lazy_pools.database import NaiveDatabase
from snippets.lazy_loading.lazy_pools.pool import handle_unpooled

__all__ = [
    "LIMIT",
    "RACERS",
    "REQUESTS",
    "TOO_MANY",
    "App",
    "NaiveAsyncDatabase",
    "Postgres",
    "Race",
    "Result",
    "app_for",
    "async_creation_race",
    "async_pooled_storm",
    "async_unpooled_storm",
    "connections",
    "creation_race",
    "limited_role",
    "pooled_storm",
    "race_line",
    "storm_lines",
    "unpooled_storm",
    "until",
    "wait_for",
]

LIMIT = 4  # the role's CONNECTION LIMIT, and the pools' max_size
REQUESTS = 12
RACERS = 8
TOO_MANY = "too many connections for role"


class Postgres(Protocol):
    """A server URL and a schema of one's own (services.Postgres, or a test's)."""

    @property
    def url(self) -> str: ...

    @property
    def dsn(self) -> str: ...

    @property
    def schema(self) -> str: ...


@dataclass(frozen=True)
class App:
    """How the application connects, and the name its connections carry."""

    dsn: str
    name: str


def app_for(postgres: Postgres) -> App:
    """Connect as the server's user; the schema name marks the connections."""
    return App(
        make_conninfo(postgres.dsn, application_name=postgres.schema), postgres.schema
    )


@contextmanager
def limited_role(postgres: Postgres, admin: Connection) -> Iterator[App]:
    """A login role allowed LIMIT connections, in the schema of `postgres`."""
    role, password = f"{postgres.schema}_app", secrets.token_hex(8)
    admin.execute(
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} CONNECTION LIMIT {}").format(
            sql.Identifier(role), sql.Literal(password), sql.Literal(LIMIT)
        )
    )
    admin.execute(
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
            sql.Identifier(postgres.schema), sql.Identifier(role)
        )
    )
    dsn = make_conninfo(
        postgres.dsn, user=role, password=password, application_name=role
    )
    try:
        yield App(dsn, role)
    finally:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
            (role,),
        )
        wait_for(lambda: connections(admin, role) == 0)
        admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def connections(admin: Connection, name: str) -> int:
    """Server connections that carry `name` as their application_name."""
    row = admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached in {timeout} s")
        time.sleep(0.002)


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.002)


@dataclass
class Burst:
    """Requests that hold their connection until the test releases them."""

    release: threading.Event = field(default_factory=threading.Event)
    holding: int = 0
    served: int = 0
    failed: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def work(self, conn: Connection) -> None:
        conn.execute("SELECT 1")
        with self.lock:
            self.holding += 1
        assert self.release.wait(timeout=10)
        with self.lock:
            self.served += 1

    def fail(self, error: Exception) -> None:
        with self.lock:
            self.failed.append(str(error))

    @property
    def arrived(self) -> int:
        return self.holding + len(self.failed)


@dataclass
class Result:
    peak: int  # server connections while every request was in
    served: int
    failed: list[str]
    extra: int = 0  # requests queued in the pool at the peak


def storm(
    admin: Connection,
    app: App,
    request: Callable[[Burst], None],
    queued: Callable[[], int] = lambda: 0,
) -> Result:
    """Let REQUESTS requests arrive one by one, count, then let them finish."""
    burst = Burst()
    threads = []
    for arrived in range(1, REQUESTS + 1):
        thread = threading.Thread(target=request, args=(burst,))
        thread.start()
        threads.append(thread)
        wait_for(lambda n=arrived: burst.arrived + queued() == n)  # type: ignore[misc]
    peak, waiting = connections(admin, app.name), queued()
    burst.release.set()
    for thread in threads:
        thread.join(timeout=15)
        assert not thread.is_alive()
    return Result(peak, burst.served, burst.failed, waiting)


def unpooled_storm(admin: Connection, app: App) -> Result:
    def request(burst: Burst) -> None:
        try:
            handle_unpooled(app.dsn, burst.work)
        except psycopg.OperationalError as error:
            burst.fail(error)

    return storm(admin, app, request)


def pooled_storm(admin: Connection, app: App) -> Result:
    db = Database(lambda: LazyPool(app.dsn, max_size=LIMIT, acquire_timeout=10))

    def request(burst: Burst) -> None:
        try:
            with db.pool().connection() as conn:
                burst.work(conn)
        except (psycopg.OperationalError, PoolTimeout) as error:
            burst.fail(error)

    try:
        result = storm(admin, app, request, queued=lambda: db.pool().waiting)
        assert db.pool().size == LIMIT  # it never opened more
    finally:
        db.close()
    return result


def storm_lines(title: str, broken: Result, pooled: Result, what: str) -> list[str]:
    reason = broken.failed[0].rsplit("FATAL:", 1)[-1].split('"')[0].strip()
    return [
        title,
        f"  {'a connection per ' + what:<26} {broken.peak:>2} connected,"
        f" {len(broken.failed)} failed: {reason}",
        f"  {f'one pool, max_size {LIMIT}':<26} {pooled.served:>2} served,"
        f" {len(pooled.failed)} failed, at most {pooled.peak} server connections",
    ]


@dataclass
class Race:
    pools: int
    connections: int
    left_open: int  # after the application closed "its" pool


def creation_race(
    admin: Connection, app: App, make_db: Callable[..., NaiveDatabase | Database]
) -> Race:
    created: list[LazyPool] = []
    inside = threading.Barrier(RACERS)

    def create() -> LazyPool:
        try:  # hold the window open until every racer is in (with Once
            inside.wait(timeout=0.3)  # only one gets here, and stops waiting)
        except threading.BrokenBarrierError:
            pass
        pool = LazyPool(app.dsn, max_size=LIMIT).warm(1)  # fail fast: connect
        created.append(pool)
        return pool

    db = make_db(create)
    start = threading.Barrier(RACERS)

    def request() -> None:
        start.wait(timeout=10)
        db.pool()

    threads = [threading.Thread(target=request) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=15)
        assert not thread.is_alive()
    opened = connections(admin, app.name)
    db.pool().close()  # shutdown closes the pool the application knows about
    wait_for(lambda: connections(admin, app.name) == sum(p.size for p in created))
    race = Race(len(created), opened, connections(admin, app.name))
    for pool in created:
        pool.close()
    return race


def race_line(label: str, race: Race) -> str:
    pools = "pool" if race.pools == 1 else "pools"
    conns = "connection" if race.connections == 1 else "connections"
    return (
        f"  {label:<15} {race.pools} {pools} created, {race.connections} server"
        f" {conns}; still open after close(): {race.left_open}"
    )


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
