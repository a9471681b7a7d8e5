"""Redis and PostgreSQL scenarios for the cache-stampede demo and tests.

Every race is deterministic: the loader a scenario hands to the cache holds
each load at a gate until every request has missed (and, with the Redis lock,
until every other process has found the lock taken), so the counts are the
same on every run.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import TypeVar

import psycopg
import redis as redis_py

from snippets.lazy_loading.cache_stampede import (
    Loader,
    Policy,
    StampedeGuard,
    product_loader,
    read_entry,
    update_price,
)
from snippets.lazy_loading.cache_stampede.naive import cache_aside_get

__all__ = [
    "PRICE",
    "PROCESSES",
    "PRODUCT",
    "REQUESTS",
    "Counting",
    "create_products",
    "expire",
    "guarded_burst",
    "make_guards",
    "naive_burst",
    "price",
    "run_together",
    "slow_first_load",
    "stale_set_with_cache_aside",
    "stale_set_with_guard",
    "total",
    "wait_for",
]

R = TypeVar("R")

REQUESTS = 16
PROCESSES = 4
PRODUCT = 1
PRICE = 2500


def create_products(dsn: str) -> None:
    """A products table with one product at version 1."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL,"
            " price_cents int NOT NULL, version bigint NOT NULL)"
        )
        conn.execute(
            "INSERT INTO products VALUES (%s, 'kettle', %s, 1)", (PRODUCT, PRICE)
        )


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
