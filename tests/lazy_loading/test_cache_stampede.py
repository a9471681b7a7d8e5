"""Tests for snippets/lazy_loading/cache_stampede.py, against real Redis and
PostgreSQL servers.

Every race is made deterministic: the loader a test hands to the cache holds
each load until the state the test wants to show exists (all callers inside,
all of them waiting, all of them served stale), then lets it go. Each
`StampedeGuard` in a test plays one process: it has its own single-flight
table and its own Redis connections.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import TypeVar

import psycopg
import pytest
import redis as redis_py

from snippets.lazy_loading.cache_stampede import (
    Loader,
    Policy,
    RedisLock,
    SingleFlight,
    StampedeGuard,
    cache_aside_get,
    demo,
    product_loader,
    read_entry,
    refresh_due,
    simulate_expiry,
    update_price,
)
from tests.conftest import ROOT, OutputCheck, Postgres, Redis
from tests.processes import read_line

R = TypeVar("R")

REQUESTS = 16
PROCESSES = 4
PRODUCT = 1
PRICE = 2500


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
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        print(f"\nPostgreSQL server {row[0] if row else '?'}")
        conn.execute(
            "CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL,"
            " price_cents int NOT NULL, version bigint NOT NULL)"
        )
        conn.execute(
            "INSERT INTO products VALUES (%s, 'kettle', %s, 1)", (PRODUCT, PRICE)
        )
    return postgres.dsn


class Counting:
    """A loader that counts its calls and can hold each one at a gate."""

    def __init__(self, load: Loader, hold: Callable[[], None] | None = None) -> None:
        self.calls = 0
        self.hold = hold
        self._load = load
        self._lock = threading.Lock()

    def __call__(self) -> tuple[str, int]:
        with self._lock:
            self.calls += 1
        if self.hold is not None:
            self.hold()
        return self._load()


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll until `condition` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached in {timeout} s")
        time.sleep(0.002)


def run_together(targets: Sequence[Callable[[], R]]) -> list[R]:
    """Start one thread per target at the same moment; return their results."""
    start = threading.Barrier(len(targets))
    results: list[R] = []
    errors: list[BaseException] = []

    def worker(target: Callable[[], R]) -> None:
        start.wait(timeout=10)
        try:
            results.append(target())
        except BaseException as error:
            errors.append(error)

    pool = [threading.Thread(target=worker, args=(t,)) for t in targets]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=20)
        assert not thread.is_alive(), "a request is stuck"
    if errors:
        raise errors[0]
    return results


def price(value: str | None) -> int:
    assert value is not None
    return int(json.loads(value)["price_cents"])


def expire(client: redis_py.Redis, key: str) -> None:
    """Let a cached key expire for real, and wait until Redis dropped it."""
    client.pexpire(key, 1)
    wait_for(lambda: client.exists(key) == 0)


# --------------------------------------------------------------------------- #
# The stampede: N requests miss together
# --------------------------------------------------------------------------- #


def naive_burst(client: redis_py.Redis, key: str, load: Loader) -> Counting:
    """16 requests miss an expired key; each load waits until all are loading."""
    client.set(key, "old", px=60_000)
    expire(client, key)
    inside = threading.Barrier(REQUESTS)

    def hold() -> None:
        inside.wait(timeout=10)  # every request has missed and is loading

    loader = Counting(load, hold)
    results = run_together(
        [partial(cache_aside_get, client, key, loader, 30.0)] * REQUESTS
    )
    assert {price(value) for value in results} == {PRICE}
    return loader


def guarded_burst(
    guards: list[StampedeGuard], key: str, load: Loader, per_guard: int
) -> list[Counting]:
    """Requests spread over guards miss an expired key together.

    The hold makes the race certain: a load starts only once every request
    has missed and joined its guard's flight and, with the Redis lock, once
    every other guard has found the lock taken; without the lock, once every
    guard's leader is loading.
    """
    guards[0].get(key, load)  # the key was hot ...
    expire(client=guards[0]._client, key=key)  # ... and has just expired
    guards[0].stats.clear()
    leaders_loading = threading.Barrier(len(guards))
    with_lock = guards[0].policy.lock_ttl is not None

    def hold(me: int) -> None:
        wait_for(lambda: all(g._flights.callers(key) == per_guard for g in guards))
        if with_lock:
            others = [g for i, g in enumerate(guards) if i != me]
            wait_for(lambda: all(g.stats["lock_busy"] >= 1 for g in others))
        else:
            leaders_loading.wait(timeout=10)

    loaders = [Counting(load, hold=partial(hold, i)) for i in range(len(guards))]
    targets = [
        partial(guard.get, key, loaders[i])
        for i, guard in enumerate(guards)
        for _ in range(per_guard)
    ]
    results = run_together(targets)
    assert {price(value) for value in results} == {PRICE}
    return loaders


def make_guards(client: redis_py.Redis, count: int, lock: bool) -> list[StampedeGuard]:
    policy = Policy(lock_ttl=5.0 if lock else None)
    return [StampedeGuard(client, policy) for _ in range(count)]


def total(guards: list[StampedeGuard], what: str) -> int:
    return sum(guard.stats[what] for guard in guards)


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


def test_stampede_output_matches_the_page(
    client: redis_py.Redis, redis: Redis, dsn: str, expected_output: OutputCheck
) -> None:
    load = product_loader(dsn, PRODUCT)
    per_guard = REQUESTS // PROCESSES

    def reads(loaders: list[Counting]) -> int:
        return sum(loader.calls for loader in loaders)

    rows = [
        ("cache-aside, no protection", naive_burst(client, redis.key("a"), load).calls),
        (
            "single-flight, 1 process",
            reads(
                guarded_burst(
                    make_guards(client, 1, True), redis.key("b"), load, REQUESTS
                )
            ),
        ),
        (
            f"single-flight, {PROCESSES} processes, no lock",
            reads(
                guarded_burst(
                    make_guards(client, PROCESSES, False),
                    redis.key("c"),
                    load,
                    per_guard,
                )
            ),
        ),
        (
            f"single-flight, {PROCESSES} processes, Redis lock",
            reads(
                guarded_burst(
                    make_guards(client, PROCESSES, True),
                    redis.key("d"),
                    load,
                    per_guard,
                )
            ),
        ),
    ]
    lines = [f"a hot key expired; {REQUESTS} requests miss it together"]
    for label, count in rows:
        noun = "read" if count == 1 else "reads"
        lines.append(f"  {label:<40} {count:>2} store {noun}")
    print("\n".join(lines))
    expected_output("lazy_loading/cache_stampede.stampede", "\n".join(lines))


# --------------------------------------------------------------------------- #
# Stale serving and early refresh
# --------------------------------------------------------------------------- #


def test_a_due_value_is_served_stale_while_one_caller_refreshes(
    client: redis_py.Redis, redis: Redis, dsn: str
) -> None:
    policy = Policy(ttl=0.05, stale_for=30.0, jitter=0.0, beta=0.0)
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
    wait_for(
        lambda: (entry := read_entry(client, key)) is not None and entry.fresh_for < 0.9
    )
    guard.get(key, loader)  # still fresh, but the draw says "refresh now"
    assert (loader.calls, guard.stats["refreshed"]) == (2, 1)
    after = read_entry(client, key)
    assert after is not None and after.fresh_for > 0.9  # renewed before it expired


def test_early_refresh_spreads_reloads_in_the_simulation(
    expected_output: OutputCheck,
) -> None:
    at_expiry = [simulate_expiry(16, 0.0, random.Random(s)) for s in range(50)]
    early = [simulate_expiry(16, 1.0, random.Random(s)) for s in range(50)]
    assert {started for started, _ in at_expiry} == {16 * 10}  # 10 ticks in 0.5 s
    assert all(lead == 0.0 for _, lead in at_expiry)
    assert sum(started for started, _ in early) / len(early) < 5
    assert all(lead > 0 for _, lead in early)
    lines = demo()
    print("\n".join(lines))
    expected_output("lazy_loading/cache_stampede.early", "\n".join(lines))


def test_module_runs_as_a_script() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "snippets.lazy_loading.cache_stampede"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert result.stdout.splitlines() == demo()


# --------------------------------------------------------------------------- #
# The stale set: a slow load finishes after a newer write
# --------------------------------------------------------------------------- #


def slow_first_load(load: Loader) -> tuple[Loader, threading.Event, threading.Event]:
    """A loader that reads the store, then waits for `go` before returning."""
    has_read, go = threading.Event(), threading.Event()

    def slow() -> tuple[str, int]:
        result = load()
        has_read.set()
        assert go.wait(timeout=10)
        return result

    return slow, has_read, go


def stale_set_with_cache_aside(client: redis_py.Redis, dsn: str, key: str) -> int:
    """Return the price the cache holds once the race is over."""
    load = product_loader(dsn, PRODUCT)
    slow, has_read, go = slow_first_load(load)
    reader = threading.Thread(target=cache_aside_get, args=(client, key, slow, 30.0))
    reader.start()
    assert has_read.wait(timeout=10)  # A read the old row and is about to SET
    with psycopg.connect(dsn, autocommit=True) as conn:
        update_price(conn, PRODUCT, PRICE + 200)
    client.delete(key)  # the write path: update the store, then invalidate
    assert price(cache_aside_get(client, key, load, 30.0)) == PRICE + 200  # B
    go.set()
    reader.join(timeout=10)
    assert not reader.is_alive()
    return price(client.get(key))  # type: ignore[arg-type]


def stale_set_with_guard(
    client: redis_py.Redis, dsn: str, key: str
) -> tuple[int, int, StampedeGuard]:
    """Return the cached price and version after the same race, and A's guard."""
    load = product_loader(dsn, PRODUCT)
    slow, has_read, go = slow_first_load(load)
    first, second = StampedeGuard(client), StampedeGuard(client)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(first.get(key, slow)))
    reader.start()
    assert has_read.wait(timeout=10)
    with psycopg.connect(dsn, autocommit=True) as conn:
        version = update_price(conn, PRODUCT, PRICE + 200)
    second.invalidate(key, version)
    other = threading.Thread(target=lambda: got.append(second.get(key, load)))
    other.start()  # B may find A's lock and wait for it: the outcome is the same
    go.set()
    for thread in (reader, other):
        thread.join(timeout=15)
        assert not thread.is_alive()
    assert sorted(price(value) for value in got) == [PRICE, PRICE + 200]
    entry = read_entry(client, key)
    assert entry is not None
    return price(entry.value), entry.version, first


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


def test_stale_set_output_matches_the_page(
    client: redis_py.Redis, redis: Redis, dsn: str, expected_output: OutputCheck
) -> None:
    naive = stale_set_with_cache_aside(client, dsn, redis.key("a"))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE products SET price_cents = %s, version = 1", (PRICE,))
    guarded, _, _ = stale_set_with_guard(client, dsn, redis.key("b"))
    lines = [
        f"A loads price {PRICE} (version 1) slowly; the price changes to"
        f" {PRICE + 200} (version 2)",
        f"  cache-aside, SET then DEL      the cache keeps serving {naive}",
        f"  guard, version-checked write   the cache serves {guarded}",
    ]
    print("\n".join(lines))
    expected_output("lazy_loading/cache_stampede.stale_set", "\n".join(lines))


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


CRASHING_LOADER = """
import sys, time
import redis
from snippets.lazy_loading.cache_stampede import Policy, StampedeGuard

client = redis.Redis.from_url(sys.argv[1], decode_responses=True, socket_timeout=5)
guard = StampedeGuard(client, Policy(lock_ttl=float(sys.argv[3])))

def load():
    print("loading", flush=True)
    time.sleep(60)  # killed before it returns
    return "never", 1

guard.get(sys.argv[2], load)
"""


def test_a_killed_lock_holder_delays_the_others_by_at_most_its_lease(
    client: redis_py.Redis, redis: Redis, dsn: str
) -> None:
    key, lease = redis.key("product:1"), 1.0
    child = subprocess.Popen(
        [sys.executable, "-c", CRASHING_LOADER, redis.url, key, str(lease)],
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
