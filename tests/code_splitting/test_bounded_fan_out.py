"""Bounded fan-out against a real loopback HTTP origin with a concurrency cap."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from typing import TypeVar

import pytest

from snippets.code_splitting.bounded_fan_out import (
    load_all,
    load_all_threaded,
    load_all_unbounded,
)
from snippets.code_splitting.single_flight_loader import (
    PartLoadError,
    fetch_part,
    fetch_part_blocking,
)
from snippets.support.code_splitting_origin import PartServer

PARTS = 200
CAP = 30  # the origin serves this many requests at once, then answers 503
WAIT = 10.0
NAMES = [f"{i:03d}" for i in range(PARTS)]
EXPECTED = [f"part {name}" for name in NAMES]

T = TypeVar("T")


@pytest.fixture
def server() -> Iterator[PartServer]:
    with PartServer(max_active=CAP) as srv:
        thread = threading.Thread(target=srv.serve_forever, daemon=True)
        thread.start()
        try:
            yield srv
        finally:
            srv.gate.set()
            srv.shutdown()
            thread.join(timeout=WAIT)


def held_until(server: PartServer, active: int, start: Callable[[], T]) -> T:
    """Hold every answer until ``active`` requests are open at once, then run."""
    server.gate.clear()
    box: list[T] = []
    worker = threading.Thread(target=lambda: box.append(start()))
    worker.start()
    server.wait_until(lambda s: s.active == active, WAIT)
    server.gate.set()
    worker.join(timeout=WAIT)
    assert box, "the load did not finish"
    return box[0]


def run(coro: Callable[[], Awaitable[T]]) -> Callable[[], T]:
    async def main() -> T:
        return await coro()

    return lambda: asyncio.run(main())


def test_unbounded_fan_out_exceeds_the_origin_limit(server: PartServer) -> None:
    fetch = partial(fetch_part, server.url)
    results = held_until(server, PARTS, run(lambda: load_all_unbounded(NAMES, fetch)))
    failed = [r for r in results if isinstance(r, PartLoadError)]
    print(f"unbounded: peak={server.peak} rejected={server.rejected}")
    assert server.peak == PARTS  # one open connection per part
    assert server.rejected == PARTS - CAP
    assert len(failed) == PARTS - CAP


def test_bounded_fan_out_stays_within_budget(server: PartServer) -> None:
    fetch = partial(fetch_part, server.url)
    results = held_until(server, CAP, run(lambda: load_all(NAMES, fetch, CAP)))
    assert results == EXPECTED  # complete and in name order
    assert server.peak == CAP
    assert server.rejected == 0
    assert sum(server.requests.values()) == PARTS


def test_threaded_fan_out_stays_within_budget(server: PartServer) -> None:
    fetch = partial(fetch_part_blocking, server.url)
    results = held_until(
        server, CAP, lambda: load_all_threaded(NAMES, fetch, CAP, timeout=WAIT)
    )
    assert results == EXPECTED
    assert server.peak == CAP
    assert server.rejected == 0


def test_first_failure_cancels_the_rest(server: PartServer) -> None:
    server.fail_next["/parts/005"] = 1
    fetch = partial(fetch_part, server.url)
    with pytest.raises(ExceptionGroup) as caught:
        asyncio.run(load_all(NAMES, fetch, budget=5))
    assert caught.group_contains(PartLoadError)
    assert sum(server.requests.values()) < PARTS  # later parts never requested


def test_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="budget"):
        asyncio.run(load_all(NAMES, fetch_part_name, budget=0))
    with pytest.raises(ValueError, match="budget"):
        load_all_threaded(NAMES, str, budget=0)


async def fetch_part_name(name: str) -> str:
    return name
