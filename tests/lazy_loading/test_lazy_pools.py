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
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from snippets.lazy_loading.lazy_pools import (
    AsyncDatabase,
    AsyncLazyPool,
    Connection,
    Database,
    LazyPool,
    PoolClosed,
    PoolTimeout,
)
from snippets.lazy_loading.lazy_pools.database import NaiveDatabase
from snippets.support.lazy_loading_pg import (
    LIMIT,
    RACERS,
    REQUESTS,
    TOO_MANY,
    App,
    NaiveAsyncDatabase,
    app_for,
    async_creation_race,
    async_pooled_storm,
    async_unpooled_storm,
    connections,
    creation_race,
    limited_role,
    pooled_storm,
    unpooled_storm,
    until,
    wait_for,
)
from tests.conftest import Postgres

# --------------------------------------------------------------------------- #
# Fixtures and helpers
# --------------------------------------------------------------------------- #


@pytest.fixture
def admin(postgres: Postgres) -> Iterator[Connection]:
    """A superuser connection that counts the application's connections."""
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        print(f"\nPostgreSQL server {row[0] if row else '?'}")
        yield conn


@pytest.fixture
def app(postgres: Postgres) -> App:
    return app_for(postgres)


@pytest.fixture
def limited(postgres: Postgres, admin: Connection) -> Iterator[App]:
    """A login role allowed LIMIT connections, in the test's schema."""
    with limited_role(postgres, admin) as role:
        yield role


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


# --------------------------------------------------------------------------- #
# Two pools from one race
# --------------------------------------------------------------------------- #


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
