"""Single-flight part loader against a real loopback HTTP origin."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator

import pytest

from snippets.code_splitting.single_flight_loader import (
    PartLoadError,
    SingleFlightLoader,
    ThreadSingleFlightLoader,
    fetch_part,
    fetch_part_blocking,
)
from snippets.code_splitting.single_flight_loader.naive import (
    NaiveLoader,
    PoisonedLoader,
)
from snippets.support.code_splitting_origin import PartServer
from tests.code_splitting.conftest import running_part_server

CALLERS = 50
WAIT = 10.0


@pytest.fixture
def server() -> Iterator[PartServer]:
    with running_part_server() as srv:
        yield srv


def fetched(server: PartServer, name: str) -> int:
    return server.requests[f"/parts/{name}"]


def load_with(server: PartServer) -> Callable[[str], Awaitable[str]]:
    return lambda name: fetch_part(server.url, name)


def test_without_single_flight_every_caller_fetches(server: PartServer) -> None:
    loader = NaiveLoader(load_with(server))

    async def main() -> list[str]:
        return await asyncio.gather(*(loader.get("chart") for _ in range(CALLERS)))

    results = asyncio.run(main())
    assert results == ["part chart"] * CALLERS
    assert fetched(server, "chart") == CALLERS


def test_single_flight_fetches_once(server: PartServer) -> None:
    loader = SingleFlightLoader(load_with(server))

    async def main() -> list[str]:
        first = await asyncio.gather(*(loader.get("chart") for _ in range(CALLERS)))
        return [*first, await loader.get("chart")]  # memoized afterwards

    assert asyncio.run(main()) == ["part chart"] * (CALLERS + 1)
    assert fetched(server, "chart") == 1


def run_threads(get: Callable[[str], str], server: PartServer, fetches: int) -> int:
    """Start CALLERS threads together; open the gate once ``fetches`` arrived."""
    barrier = threading.Barrier(CALLERS + 1)
    results: list[str] = []
    lock = threading.Lock()

    def caller() -> None:
        barrier.wait(timeout=WAIT)
        value = get("model")
        with lock:
            results.append(value)

    server.gate.clear()
    threads = [threading.Thread(target=caller) for _ in range(CALLERS)]
    for t in threads:
        t.start()
    barrier.wait(timeout=WAIT)
    server.wait_until(lambda s: fetched(s, "model") >= fetches, WAIT)
    server.gate.set()
    for t in threads:
        t.join(timeout=WAIT)
    assert results == ["part model"] * CALLERS
    return fetched(server, "model")


def test_threads_without_single_flight_fetch_n_times(server: PartServer) -> None:
    cache: dict[str, str] = {}

    def naive_get(name: str) -> str:
        if name not in cache:
            cache[name] = fetch_part_blocking(server.url, name)
        return cache[name]

    # Every thread is inside the fetch before the origin answers anyone.
    assert run_threads(naive_get, server, fetches=CALLERS) == CALLERS


def test_threads_with_single_flight_fetch_once(server: PartServer) -> None:
    loader = ThreadSingleFlightLoader[str, str](
        lambda n: fetch_part_blocking(server.url, n)
    )
    assert run_threads(loader.get, server, fetches=1) == 1


def test_cached_failure_is_permanent(server: PartServer) -> None:
    server.fail_next["/parts/model"] = 1  # one transient failure
    loader = PoisonedLoader(load_with(server))

    async def main() -> int:
        failures = 0
        for _ in range(3):
            try:
                await loader.get("model")
            except PartLoadError:
                failures += 1
        return failures

    assert asyncio.run(main()) == 3  # the origin recovered, the loader did not
    assert fetched(server, "model") == 1


def test_failed_load_is_evicted_and_retried(server: PartServer) -> None:
    server.fail_next["/parts/model"] = 1
    loader = SingleFlightLoader(load_with(server))

    async def main() -> list[str]:
        first = await asyncio.gather(
            *(loader.get("model") for _ in range(CALLERS)), return_exceptions=True
        )
        assert all(isinstance(r, PartLoadError) for r in first)  # shared failure
        return [await loader.get("model"), await loader.get("model")]

    assert asyncio.run(main()) == ["part model", "part model"]
    assert fetched(server, "model") == 2


def test_threaded_failure_is_evicted(server: PartServer) -> None:
    server.fail_next["/parts/model"] = 1
    loader = ThreadSingleFlightLoader[str, str](
        lambda n: fetch_part_blocking(server.url, n)
    )
    with pytest.raises(PartLoadError):
        loader.get("model")
    assert loader.get("model") == "part model"
    assert fetched(server, "model") == 2


def test_cancelled_caller_does_not_cancel_the_load(server: PartServer) -> None:
    loader = SingleFlightLoader(load_with(server))

    async def main() -> list[str]:
        server.gate.clear()
        tasks = [asyncio.create_task(loader.get("model")) for _ in range(5)]
        await asyncio.to_thread(
            server.wait_until, lambda s: fetched(s, "model") == 1, WAIT
        )
        tasks[0].cancel()
        server.gate.set()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(done[0], asyncio.CancelledError)
        return [str(r) for r in done[1:]]

    assert asyncio.run(main()) == ["part model"] * 4
    assert fetched(server, "model") == 1
