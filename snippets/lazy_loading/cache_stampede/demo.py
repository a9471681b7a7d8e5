"""The cases the cache-stampede page shows.

Run one with ``python -m snippets.lazy_loading.cache_stampede.demo early``
(``stampede`` and ``stale_set`` need Redis and PostgreSQL).
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import redis

from snippets.lazy_loading.cache_stampede import StampedeGuard, product_loader
from snippets.lazy_loading.cache_stampede.simulate import simulate_expiry
from snippets.support import services
from snippets.support.cases import run_cases
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
    stale_set_with_cache_aside,
    stale_set_with_guard,
)

__all__: list[str] = []


# --8<-- [start:demo]
def demo(expiries: int = 200, seed: int = 7) -> list[str]:
    """The lines the page shows: reloads per expiry, without and with early refresh."""
    processes = 16
    lines = [
        f"{processes} processes read one key every 50 ms, a reload takes 0.5 s,"
        f" {expiries} expiries:"
    ]
    for label, beta in (("refresh at expiry", 0.0), ("early refresh, beta 1", 1.0)):
        rng = random.Random(seed)
        runs = [simulate_expiry(processes, beta, rng) for _ in range(expiries)]
        reloads = [started for started, _ in runs]
        lead = sum(lead for _, lead in runs) / expiries
        lines.append(
            f"  {label:<22} reloads mean {sum(reloads) / expiries:5.1f},"
            f" max {max(reloads):3}; the first {lead:.1f} s before expiry"
        )
    return lines


# --8<-- [end:demo]


@contextmanager
def services_for_demo() -> Iterator[tuple[redis.Redis, services.Redis, str]]:
    """A Redis client, its key prefix, and a schema with one product."""
    with services.redis() as rd, services.postgres() as pg:
        create_products(pg.dsn)
        client = redis.Redis.from_url(rd.url, decode_responses=True, socket_timeout=5)
        try:
            yield client, rd, pg.dsn
        finally:
            client.close()


def show_stampede() -> list[str]:
    """A hot key expires; 16 requests miss it together, four ways."""

    def reads(loaders: list[Counting]) -> int:
        return sum(loader.calls for loader in loaders)

    with services_for_demo() as (client, rd, dsn):
        load = product_loader(dsn, PRODUCT)
        per = REQUESTS // PROCESSES

        def guarded(name: str, count: int, lock: bool, each: int) -> int:
            guards: list[StampedeGuard] = make_guards(client, count, lock)
            return reads(guarded_burst(guards, rd.key(name), load, each))

        rows = [
            (
                "cache-aside, no protection",
                naive_burst(client, rd.key("a"), load).calls,
            ),
            ("single-flight, 1 process", guarded("b", 1, True, REQUESTS)),
            (
                f"single-flight, {PROCESSES} processes, no lock",
                guarded("c", PROCESSES, False, per),
            ),
            (
                f"single-flight, {PROCESSES} processes, Redis lock",
                guarded("d", PROCESSES, True, per),
            ),
        ]
    lines = [f"a hot key expired; {REQUESTS} requests miss it together"]
    for label, count in rows:
        noun = "read" if count == 1 else "reads"
        lines.append(f"  {label:<40} {count:>2} store {noun}")
    return lines


def show_stale_set() -> list[str]:
    """A slow load finishes after a newer write, with and without versions."""
    with services_for_demo() as (client, rd, dsn):
        naive = stale_set_with_cache_aside(client, dsn, rd.key("a"))
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE products SET price_cents = %s, version = 1", (PRICE,))
        guarded, _, _ = stale_set_with_guard(client, dsn, rd.key("b"))
    return [
        f"A loads price {PRICE} (version 1) slowly; the price changes to"
        f" {PRICE + 200} (version 2)",
        f"  cache-aside, SET then DEL      the cache keeps serving {naive}",
        f"  guard, version-checked write   the cache serves {guarded}",
    ]


if __name__ == "__main__":
    sys.exit(
        run_cases(
            {"early": demo, "stale_set": show_stale_set, "stampede": show_stampede}
        )
    )
