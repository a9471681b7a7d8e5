"""Tests for snippets/lazy_loading/lazy_pools.py, against a real PostgreSQL.

Server connections are counted in ``pg_stat_activity`` by the
``application_name`` each test gives its connections. The connection limit is
real too: a login role of the test's own with ``CONNECTION LIMIT 4``, which
PostgreSQL enforces for every role that is not a superuser.

Requests arrive one after another, and each holds its connection until the
test has counted: the counts are exact on every run.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from snippets.lazy_loading.lazy_pools import (
    AsyncDatabase,
    AsyncLazyPool,
    Connection,
    Database,
    LazyPool,
    NaiveDatabase,
    PoolClosed,
    PoolTimeout,
    handle_unpooled,
)
from tests.conftest import OutputCheck, Postgres

LIMIT = 4  # the role's CONNECTION LIMIT, and the pools' max_size
REQUESTS = 12
RACERS = 8
TOO_MANY = "too many connections for role"


# --------------------------------------------------------------------------- #
# Fixtures and helpers
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class App:
    """How the application connects, and the name its connections carry."""

    dsn: str
    name: str


@pytest.fixture
def admin(postgres: Postgres) -> Iterator[Connection]:
    """A superuser connection that counts the application's connections."""
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        print(f"\nPostgreSQL server {row[0] if row else '?'}")
        yield conn


@pytest.fixture
def app(postgres: Postgres) -> App:
    return App(
        make_conninfo(postgres.dsn, application_name=postgres.schema), postgres.schema
    )


@pytest.fixture
def limited(postgres: Postgres, admin: Connection) -> Iterator[App]:
    """A login role allowed LIMIT connections, in the test's schema."""
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


# --------------------------------------------------------------------------- #
# The connection storm
# --------------------------------------------------------------------------- #


def test_a_connection_per_request_hits_the_servers_limit(
    admin: Connection, limited: App
) -> None:
    result = unpooled_storm(admin, limited)
    assert result.peak == LIMIT
    assert len(result.failed) == REQUESTS - LIMIT
    assert all(TOO_MANY in message for message in result.failed)
    assert result.served == LIMIT


def test_one_bounded_pool_serves_every_request_within_the_limit(
    admin: Connection, limited: App
) -> None:
    result = pooled_storm(admin, limited)
    assert result.failed == []
    assert result.served == REQUESTS
    assert result.peak == LIMIT
    assert result.extra == REQUESTS - LIMIT  # they queued instead of connecting


def test_storm_output_matches_the_page(
    admin: Connection, limited: App, expected_output: OutputCheck
) -> None:
    broken = unpooled_storm(admin, limited)
    wait_for(lambda: connections(admin, limited.name) == 0)
    pooled = pooled_storm(admin, limited)
    title = f"{REQUESTS} requests at cold start, role limit {LIMIT} connections"
    lines = storm_lines(title, broken, pooled, "request")
    print("\n".join(lines))
    expected_output("lazy_loading/lazy_pools.storm", "\n".join(lines))


# --------------------------------------------------------------------------- #
# Two pools from one race
# --------------------------------------------------------------------------- #


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


def test_check_then_act_creates_a_pool_per_racer_and_leaks_them(
    admin: Connection, app: App
) -> None:
    race = creation_race(admin, app, NaiveDatabase)
    assert race.pools == RACERS
    assert race.connections == RACERS
    assert race.left_open == RACERS - 1


def test_once_creates_one_pool(admin: Connection, app: App) -> None:
    race = creation_race(admin, app, Database)
    assert (race.pools, race.connections, race.left_open) == (1, 1, 0)


def test_race_output_matches_the_page(
    admin: Connection, app: App, expected_output: OutputCheck
) -> None:
    lines = [f"{RACERS} requests race to create the pool on first use"]
    for label, make_db in (("check-then-act", NaiveDatabase), ("Once", Database)):
        race = creation_race(admin, app, make_db)
        lines.append(race_line(label, race))
    print("\n".join(lines))
    expected_output("lazy_loading/lazy_pools.race", "\n".join(lines))


def race_line(label: str, race: Race) -> str:
    pools = "pool" if race.pools == 1 else "pools"
    conns = "connection" if race.connections == 1 else "connections"
    return (
        f"  {label:<15} {race.pools} {pools} created, {race.connections} server"
        f" {conns}; still open after close(): {race.left_open}"
    )


# --------------------------------------------------------------------------- #
# The pool's edges: bounded waits, failed connects, broken connections, close
# --------------------------------------------------------------------------- #


def test_a_full_pool_makes_callers_wait_a_bounded_time(
    admin: Connection, app: App
) -> None:
    pool = LazyPool(app.dsn, max_size=2)
    try:
        with pool.connection(), pool.connection():
            started = time.monotonic()
            with pytest.raises(PoolTimeout), pool.connection(timeout=0.2):
                pass
            waited = time.monotonic() - started
            assert 0.2 <= waited < 2.0
            assert connections(admin, app.name) == 2
        assert pool.size == 2 and pool.waiting == 0
    finally:
        pool.close()


def test_a_failed_connect_gives_its_slot_back(admin: Connection, limited: App) -> None:
    others = [psycopg.connect(limited.dsn) for _ in range(LIMIT)]  # role is full
    pool = LazyPool(limited.dsn, max_size=1)
    try:
        with pytest.raises(psycopg.OperationalError, match=TOO_MANY), pool.connection():
            pass
        assert pool.size == 0
        for conn in others:
            conn.close()
        wait_for(lambda: connections(admin, limited.name) == 0)
        with pool.connection() as conn:  # the one slot is still there
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        pool.close()
        for conn in others:
            conn.close()


def test_a_connection_the_server_dropped_is_replaced(
    admin: Connection, app: App
) -> None:
    pool = LazyPool(app.dsn, max_size=1)
    try:
        with pool.connection() as conn:
            pid = conn.info.backend_pid
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        wait_for(lambda: connections(admin, app.name) == 0)
        with pytest.raises(psycopg.OperationalError), pool.connection() as conn:
            conn.execute("SELECT 1")  # the first use finds out
        assert pool.size == 0  # dropped, and its slot kept
        with pool.connection() as conn:
            assert conn.info.backend_pid != pid
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        pool.close()


def test_a_connection_comes_back_without_its_open_transaction(app: App) -> None:
    pool = LazyPool(app.dsn, max_size=1)
    try:
        with pool.connection() as conn:
            conn.execute("CREATE TEMP TABLE t (n int)")
            conn.execute("INSERT INTO t VALUES (1)")  # never committed
        with pool.connection() as conn:
            status = conn.info.transaction_status
            assert status == psycopg.pq.TransactionStatus.IDLE
            with pytest.raises(psycopg.errors.UndefinedTable):
                conn.execute("SELECT n FROM t")
            conn.rollback()
    finally:
        pool.close()


def test_close_fails_waiting_callers_and_closes_every_connection(
    admin: Connection, app: App
) -> None:
    pool = LazyPool(app.dsn, max_size=1, acquire_timeout=10)
    outcome: list[str] = []

    def waiter() -> None:
        try:
            with pool.connection():
                outcome.append("served")
        except PoolClosed:
            outcome.append("closed")

    with pool.connection():
        thread = threading.Thread(target=waiter)
        thread.start()
        wait_for(lambda: pool.waiting == 1)
        pool.close()
        thread.join(timeout=5)
        assert outcome == ["closed"]
    assert pool.size == 0
    wait_for(lambda: connections(admin, app.name) == 0)


# --------------------------------------------------------------------------- #
# asyncio
# --------------------------------------------------------------------------- #


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


def test_asyncio_a_connection_per_task_hits_the_limit(
    admin: Connection, limited: App
) -> None:
    result = asyncio.run(async_unpooled_storm(admin, limited))
    assert (result.peak, len(result.failed)) == (LIMIT, REQUESTS - LIMIT)
    assert all(TOO_MANY in message for message in result.failed)


def test_asyncio_one_bounded_pool_stays_within_the_limit(
    admin: Connection, limited: App
) -> None:
    result = asyncio.run(async_pooled_storm(admin, limited))
    assert (result.served, result.failed, result.peak) == (REQUESTS, [], LIMIT)
    assert result.extra == REQUESTS - LIMIT


def test_asyncio_check_then_act_across_an_await_creates_many_pools(
    admin: Connection, app: App
) -> None:
    race = asyncio.run(async_creation_race(admin, app, NaiveAsyncDatabase))
    assert (race.pools, race.connections, race.left_open) == (
        RACERS,
        RACERS,
        RACERS - 1,
    )


def test_asyncio_async_once_creates_one_pool(admin: Connection, app: App) -> None:
    race = asyncio.run(async_creation_race(admin, app, AsyncDatabase))
    assert (race.pools, race.connections, race.left_open) == (1, 1, 0)


def test_asyncio_output_matches_the_page(
    admin: Connection, app: App, limited: App, expected_output: OutputCheck
) -> None:
    async def scenario() -> list[str]:
        broken = await async_unpooled_storm(admin, limited)
        await asyncio.to_thread(wait_for, lambda: connections(admin, limited.name) == 0)
        pooled = await async_pooled_storm(admin, limited)
        title = f"asyncio: {REQUESTS} tasks at cold start, role limit {LIMIT}"
        lines = storm_lines(title, broken, pooled, "task")
        lines.append(f"asyncio: {RACERS} tasks race to create the pool")
        for label, make_db in (
            ("check-then-act", NaiveAsyncDatabase),
            ("AsyncOnce", AsyncDatabase),
        ):
            lines.append(
                race_line(label, await async_creation_race(admin, app, make_db))
            )
        return lines

    lines = asyncio.run(scenario())
    print("\n".join(lines))
    expected_output("lazy_loading/lazy_pools.asyncio", "\n".join(lines))


def test_asyncio_a_cancelled_waiter_does_not_take_a_slot_with_it(app: App) -> None:
    async def scenario() -> int:
        pool = AsyncLazyPool(app.dsn, max_size=1, acquire_timeout=10)
        try:
            async with pool.connection():
                waiter = asyncio.create_task(pool._take(10))
                await until(lambda: pool.waiting == 1)
                waiter.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await waiter
                assert pool.waiting == 0
            async with pool.connection(timeout=1) as conn:  # the slot came back
                await conn.execute("SELECT 1")
            return pool.size
        finally:
            await pool.close()

    assert asyncio.run(scenario()) == 1


def test_asyncio_a_failed_creation_is_retried(app: App) -> None:
    attempts = 0

    async def create() -> AsyncLazyPool:
        nonlocal attempts
        attempts += 1
        dsn = app.dsn if attempts > 1 else make_conninfo(app.dsn, port=1)
        return await AsyncLazyPool(dsn, max_size=1, connect_timeout=2).warm(1)

    async def scenario() -> None:
        db = AsyncDatabase(create)
        with pytest.raises(psycopg.OperationalError):
            await db.pool()
        pool = await db.pool()
        assert pool.size == 1
        await db.close()

    asyncio.run(scenario())
    assert attempts == 2


def test_asyncio_a_task_cancelled_during_rollback_gives_its_slot_back(
    app: App,
) -> None:
    """Cancel a request, then cancel it again while `_give_back` rolls back."""

    async def scenario() -> int:
        pool = AsyncLazyPool(app.dsn, max_size=1, acquire_timeout=10)
        lent: list[psycopg.AsyncConnection[Any]] = []
        holding = asyncio.Event()

        async def request() -> None:
            async with pool.connection() as conn:
                lent.append(conn)
                await conn.execute("SELECT 1")  # opens a transaction
                holding.set()
                await asyncio.Event().wait()  # a request that never finishes

        task = asyncio.create_task(request())
        await holding.wait()
        task.cancel()  # the request is cancelled: its block exits ...
        await asyncio.sleep(0)  # ... and `_give_back` awaits the ROLLBACK
        status = lent[0].pgconn.transaction_status
        assert status == psycopg.pq.TransactionStatus.ACTIVE, status
        task.cancel()  # cancelled again, in the middle of the rollback
        with pytest.raises(asyncio.CancelledError):
            await task
        try:
            async with pool.connection(timeout=2) as conn:  # the slot came back
                await conn.execute("SELECT 1")
            return pool.size
        finally:
            await pool.close()

    assert asyncio.run(scenario()) == 1
