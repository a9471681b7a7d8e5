"""Tests for snippets/lazy_loading/cache_stampede.py, against real Redis and
PostgreSQL servers.

Every race is made deterministic: the loader a test hands to the cache holds
each load until the state the test wants to show exists (all callers inside,
all of them waiting, all of them served stale), then lets it go. Each
`StampedeGuard` in a test plays one process: it has its own single-flight
table and its own Redis connections.
"""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial

import pytest
import redis as redis_py

from snippets.lazy_loading.cache_stampede import (
    Policy,
    RedisLock,
    SingleFlight,
    StampedeGuard,
    product_loader,
    read_entry,
    refresh_due,
)
from snippets.lazy_loading.cache_stampede.simulate import simulate_expiry
from snippets.support.lazy_loading_cache import (
    PRICE,
    PROCESSES,
    PRODUCT,
    REQUESTS,
    Counting,
    create_products,
    guarded_burst,
    make_guards,
    naive_burst,
    price,
    run_together,
    stale_set_with_cache_aside,
    stale_set_with_guard,
    total,
    wait_for,
)
from tests.conftest import ROOT, Postgres, Redis
from tests.processes import read_line

# --------------------------------------------------------------------------- #
# Fixtures and helpers
# --------------------------------------------------------------------------- #


@pytest.fixture
def client(redis: Redis) -> Iterator[redis_py.Redis]:
    connection = redis_py.Redis.from_url(
        redis.url, decode_responses=True, socket_timeout=5
    )
    print(f"\nRedis server {connection.info('server')['redis_version']}")
    yield connection
    connection.close()


@pytest.fixture
def dsn(postgres: Postgres) -> str:
    """The test's schema, with one product at version 1."""
    create_products(postgres.dsn)
    return postgres.dsn


# --------------------------------------------------------------------------- #
# The stampede: N requests miss together
# --------------------------------------------------------------------------- #


def test_cache_aside_lets_every_request_read_the_store(
    client: redis_py.Redis, redis: Redis, dsn: str
) -> None:
    loader = naive_burst(client, redis.key("product:1"), product_loader(dsn, PRODUCT))
    assert loader.calls == REQUESTS


def test_single_flight_reads_once_per_process(
    client: redis_py.Redis, redis: Redis, dsn: str
) -> None:
    guards = make_guards(client, 1, lock=True)
    key = redis.key("product:1")
    loaders = guarded_burst(guards, key, product_loader(dsn, PRODUCT), REQUESTS)
    assert sum(loader.calls for loader in loaders) == 1
    assert guards[0].stats["loaded"] == 1
    assert guards[0].stats["shared"] == REQUESTS - 1


def test_without_a_shared_lock_each_process_reads_once(
    client: redis_py.Redis, redis: Redis, dsn: str
) -> None:
    guards = make_guards(client, PROCESSES, lock=False)
    key = redis.key("product:1")
    per_guard = REQUESTS // PROCESSES
    loaders = guarded_burst(guards, key, product_loader(dsn, PRODUCT), per_guard)
    assert sum(loader.calls for loader in loaders) == PROCESSES
    assert total(guards, "shared") == REQUESTS - PROCESSES


def test_redis_lock_makes_it_one_read_across_processes(
    client: redis_py.Redis, redis: Redis, dsn: str
) -> None:
    guards = make_guards(client, PROCESSES, lock=True)
    key = redis.key("product:1")
    per_guard = REQUESTS // PROCESSES
    loaders = guarded_burst(guards, key, product_loader(dsn, PRODUCT), per_guard)
    assert sum(loader.calls for loader in loaders) == 1
    assert total(guards, "loaded") == 1
    assert total(guards, "waited") == PROCESSES - 1
    assert total(guards, "shared") == REQUESTS - PROCESSES
    assert not client.exists(f"{key}:lock"), "the lock was not released"


# --------------------------------------------------------------------------- #
# Stale serving and early refresh
# --------------------------------------------------------------------------- #


def test_a_due_value_is_served_stale_while_one_caller_refreshes(
    client: redis_py.Redis, redis: Redis, dsn: str
) -> None:
    # A TTL long next to a loaded machine's delays: the refreshed entry must
    # still be fresh when the last line reads it.
    policy = Policy(ttl=0.5, stale_for=30.0, jitter=0.0, beta=0.0)
    guards = [StampedeGuard(client, policy) for _ in range(2)]
    key = redis.key("product:1")
    load = product_loader(dsn, PRODUCT)
    guards[0].get(key, load)
    wait_for(
        lambda: (entry := read_entry(client, key)) is not None and entry.fresh_for <= 0
    )

    others = REQUESTS // 2 - 1  # every request but the refresher's
    loader = Counting(
        load, hold=lambda: wait_for(lambda: total(guards, "stale") == others)
    )
    results = run_together(
        [partial(g.get, key, loader) for g in guards for _ in range(4)]
    )

    assert loader.calls == 1
    assert total(guards, "refreshed") == 1
    assert total(guards, "stale") == others  # they returned while the load ran
    assert {price(value) for value in results} == {PRICE}
    entry = read_entry(client, key)
    assert entry is not None and entry.fresh_for > 0


def test_a_failed_refresh_keeps_serving_the_old_value(
    client: redis_py.Redis, redis: Redis, dsn: str
) -> None:
    guard = StampedeGuard(
        client, Policy(ttl=0.05, stale_for=30.0, jitter=0.0, beta=0.0)
    )
    key = redis.key("product:1")
    guard.get(key, product_loader(dsn, PRODUCT))
    wait_for(
        lambda: (entry := read_entry(client, key)) is not None and entry.fresh_for <= 0
    )

    def broken() -> tuple[str, int]:
        raise ConnectionError("database is down")

    assert price(guard.get(key, broken)) == PRICE
    assert guard.stats["refresh_failed"] == 1
    assert not client.exists(f"{key}:lock"), "a failed refresh kept the lock"


class Draw(random.Random):
    """A random source whose `random()` returns a value the test chooses."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def test_refresh_due_fires_with_the_documented_probability() -> None:
    assert refresh_due(0.0, delta=0.2, beta=1.0, rng=Draw(0.0))  # expired
    assert not refresh_due(5.0, delta=0.2, beta=0.0, rng=Draw(0.999))  # beta 0: never
    # head start = -delta * beta * ln(1 - U): with U = 1 - 1/e it is delta * beta
    u = 1 - math.exp(-1)
    assert refresh_due(0.39, delta=0.2, beta=2.0, rng=Draw(u))
    assert not refresh_due(0.41, delta=0.2, beta=2.0, rng=Draw(u))
    rng = random.Random(1)
    fresh_for, delta, beta, draws = 1.0, 0.5, 1.0, 20_000
    fired = sum(refresh_due(fresh_for, delta, beta, rng) for _ in range(draws))
    expected = math.exp(-fresh_for / (delta * beta))  # P(head start >= fresh_for)
    assert abs(fired / draws - expected) < 0.01


def test_early_refresh_renews_a_fresh_value_before_its_expiry(
    client: redis_py.Redis, redis: Redis, dsn: str
) -> None:
    draw = Draw(0.5)
    guard = StampedeGuard(client, Policy(ttl=1.0, jitter=0.0), rng=draw)
    key = redis.key("product:1")
    load = product_loader(dsn, PRODUCT)

    def slow_load() -> tuple[str, int]:
        time.sleep(0.05)  # a load that costs something: delta >= 0.05 s
        return load()

    loader = Counting(slow_load)
    guard.get(key, loader)
    guard.get(key, loader)  # U = 0.5: a head start of about 0.7 * delta
    assert (loader.calls, guard.stats["hit"]) == (1, 1)

    draw.value = 1 - 2**-52  # a head start of about 36 * delta (>= 1.8 s)
    # Half the TTL gone, so that the renewal shows however long a loaded
    # machine takes between the write and the read below.
    wait_for(
        lambda: (entry := read_entry(client, key)) is not None and entry.fresh_for < 0.5
    )
    guard.get(key, loader)  # still fresh, but the draw says "refresh now"
    assert (loader.calls, guard.stats["refreshed"]) == (2, 1)
    after = read_entry(client, key)
    assert after is not None and after.fresh_for > 0.5  # renewed before it expired


def test_early_refresh_spreads_reloads_in_the_simulation() -> None:
    at_expiry = [simulate_expiry(16, 0.0, random.Random(s)) for s in range(50)]
    early = [simulate_expiry(16, 1.0, random.Random(s)) for s in range(50)]
    assert {started for started, _ in at_expiry} == {16 * 10}  # 10 ticks in 0.5 s
    assert all(lead == 0.0 for _, lead in at_expiry)
    assert sum(started for started, _ in early) / len(early) < 5
    assert all(lead > 0 for _, lead in early)


# --------------------------------------------------------------------------- #
# The stale set: a slow load finishes after a newer write
# --------------------------------------------------------------------------- #


def test_plain_cache_aside_keeps_the_old_value_after_a_slow_load(
    client: redis_py.Redis, redis: Redis, dsn: str
) -> None:
    assert stale_set_with_cache_aside(client, dsn, redis.key("product:1")) == PRICE


def test_versioned_writes_refuse_the_stale_value(
    client: redis_py.Redis, redis: Redis, dsn: str
) -> None:
    cached, version, first = stale_set_with_guard(client, dsn, redis.key("product:1"))
    assert (cached, version) == (PRICE + 200, 2)
    assert first.stats["stale_write_refused"] == 1


# --------------------------------------------------------------------------- #
# The lock: token-checked release, crashed holders, bounded waits
# --------------------------------------------------------------------------- #


def test_releasing_with_del_deletes_the_next_holders_lock(
    client: redis_py.Redis, redis: Redis
) -> None:
    key = redis.key("lock")
    short, long = RedisLock(client, ttl=0.05), RedisLock(client, ttl=30.0)
    assert short.acquire(key) is not None  # A's load outlives its lease ...
    wait_for(lambda: client.exists(key) == 0)
    assert long.acquire(key) is not None  # ... B takes the lock
    client.delete(key)  # A "releases" with a plain DEL
    assert client.get(key) is None  # B's lock is gone: a third process may enter


def test_token_checked_release_leaves_the_next_holders_lock(
    client: redis_py.Redis, redis: Redis
) -> None:
    key = redis.key("lock")
    short, long = RedisLock(client, ttl=0.05), RedisLock(client, ttl=30.0)
    first = short.acquire(key)
    assert first is not None
    wait_for(lambda: client.exists(key) == 0)
    second = long.acquire(key)
    assert second is not None
    assert short.acquire(key) is None  # taken
    assert short.release(key, first) is False  # not A's any more
    assert client.get(key) == second
    assert long.release(key, second) is True
    assert client.exists(key) == 0


def test_a_killed_lock_holder_delays_the_others_by_at_most_its_lease(
    client: redis_py.Redis, redis: Redis, dsn: str
) -> None:
    key, lease = redis.key("product:1"), 1.0
    child = subprocess.Popen(
        [
            *(sys.executable, "-m", "snippets.support.lazy_loading_children"),
            *("crashing-loader", redis.url, key, str(lease)),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert read_line(child) == "loading"  # it holds the lock
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
    assert 0 < client.pttl(f"{key}:lock") <= lease * 1000  # the lock outlived it

    guard = StampedeGuard(client, Policy(lock_ttl=lease, wait=5.0))
    loader = Counting(product_loader(dsn, PRODUCT))
    started = time.monotonic()
    assert price(guard.get(key, loader)) == PRICE
    waited = time.monotonic() - started
    assert loader.calls == 1
    assert guard.stats["lock_busy"] >= 1 and guard.stats["loaded"] == 1
    assert waited < lease + 1.0
    print(f"\nwaited {waited:.2f} s for the dead holder's {lease:.0f} s lease")


def test_a_waiter_gives_up_after_its_deadline(
    client: redis_py.Redis, redis: Redis, dsn: str
) -> None:
    key = redis.key("product:1")
    assert RedisLock(client, ttl=30.0).acquire(f"{key}:lock") is not None  # stuck
    guard = StampedeGuard(client, Policy(wait=0.3))
    loader = Counting(product_loader(dsn, PRODUCT))
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        guard.get(key, loader)
    assert time.monotonic() - started < 2.0
    assert loader.calls == 0


# --------------------------------------------------------------------------- #
# SingleFlight on its own
# --------------------------------------------------------------------------- #


def test_single_flight_shares_a_failure_and_then_forgets_it() -> None:
    flights: SingleFlight[str] = SingleFlight()
    runs = 0

    def failing() -> str:
        nonlocal runs
        runs += 1
        wait_for(lambda: flights.callers("k") == 3)
        raise ConnectionError("store unavailable")

    def call() -> str:
        try:
            return flights.do("k", failing, timeout=10)[0]
        except ConnectionError as error:
            return str(error)

    assert run_together([call] * 3) == ["store unavailable"] * 3
    assert runs == 1
    assert flights.callers("k") == 0
    assert flights.do("k", lambda: "fresh") == ("fresh", False)


def test_each_follower_raises_its_own_exception_caused_by_the_leaders() -> None:
    flights: SingleFlight[str] = SingleFlight()
    callers = 4

    def failing() -> str:
        wait_for(lambda: flights.callers("k") == callers)
        raise ConnectionError("store unavailable")

    def call() -> BaseException:
        try:
            flights.do("k", failing, timeout=10)
        except ConnectionError as error:
            return error
        raise AssertionError("the shared call did not fail")

    errors = run_together([call] * callers)
    leaders = [e for e in errors if e.__cause__ is None]
    assert len(leaders) == 1
    followers = [e for e in errors if e.__cause__ is not None]
    assert len({id(e) for e in errors}) == callers  # one object per caller
    assert all(e.__cause__ is leaders[0] for e in followers)
    assert all(str(e) == "store unavailable" for e in errors)
