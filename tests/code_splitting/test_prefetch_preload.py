"""Tests for snippets/code_splitting/prefetch_preload.py.

The fetch is an ``asyncio.sleep`` of one unit (0.25 s, long next to the
scheduling delays of a loaded machine), so the counts depend only on the order
in which the loader starts fetches. Nothing here times anything.
"""

from __future__ import annotations

import asyncio

import pytest

from snippets.code_splitting.prefetch_preload import (
    FifoLoader,
    PriorityLoader,
    critical_behind_prefetches,
)

PREFETCHES, SLOTS = 20, 4


def test_fifo_critical_load_waits_behind_the_prefetches() -> None:
    c = asyncio.run(critical_behind_prefetches(FifoLoader, PREFETCHES, SLOTS))
    assert c["started"] == PREFETCHES
    assert c["finished"] >= PREFETCHES - SLOTS
    assert c["fetches"] == PREFETCHES + 1


def test_priority_critical_load_starts_before_any_prefetch_finishes() -> None:
    c = asyncio.run(critical_behind_prefetches(PriorityLoader, PREFETCHES, SLOTS))
    assert c["finished"] == 0
    assert c["started"] == SLOTS  # the ones running when the load arrived
    assert c["preempted"] == 1
    assert c["fetches"] == PREFETCHES + 1  # the preempted one ran again, once


def test_failed_prefetch_is_fetched_again_by_the_next_load() -> None:
    calls: list[str] = []

    async def fetch(name: str) -> bytes:
        calls.append(name)
        if len(calls) == 1:
            raise ConnectionError("reset")
        return b"ok"

    async def scenario() -> bytes:
        loader = PriorityLoader(fetch, slots=2)
        try:
            loader.prefetch("part")
            for _ in range(3):
                await asyncio.sleep(0)
            return await asyncio.wait_for(loader.load("part"), timeout=5)
        finally:
            await loader.aclose()

    assert asyncio.run(scenario()) == b"ok"
    assert calls == ["part", "part"]


def test_a_prefetch_someone_waits_for_is_not_preempted() -> None:
    calls: list[str] = []

    async def scenario() -> tuple[tuple[bytes, bytes], int]:
        release = asyncio.Event()

        async def fetch(name: str) -> bytes:
            calls.append(name)
            await release.wait()
            return name.encode()

        loader = PriorityLoader(fetch, slots=1)
        try:
            loader.prefetch("part")
            await asyncio.sleep(0)
            joined = asyncio.ensure_future(loader.load("part"))
            await asyncio.sleep(0)
            other = asyncio.ensure_future(loader.load("other"))
            await asyncio.sleep(0)
            release.set()
            both = asyncio.gather(joined, other)
            first, second = await asyncio.wait_for(both, timeout=5)
            return (first, second), loader.preempted
        finally:
            await loader.aclose()

    assert asyncio.run(scenario()) == ((b"part", b"other"), 0)
    assert calls == ["part", "other"]


def test_cancelled_critical_caller_leaks_no_slot() -> None:
    async def scenario() -> tuple[bytes, int]:
        release = asyncio.Event()

        async def fetch(name: str) -> bytes:
            if name == "slow":
                await release.wait()
            return name.encode()

        loader = PriorityLoader(fetch, slots=1)
        try:
            slow = asyncio.ensure_future(loader.load("slow"))
            await asyncio.sleep(0)
            impatient = asyncio.ensure_future(loader.load("other"))
            await asyncio.sleep(0)
            impatient.cancel()  # the caller gives up; the part keeps loading
            release.set()
            await asyncio.wait_for(slow, timeout=5)
            other = await asyncio.wait_for(loader.load("other"), timeout=5)
            after = await asyncio.wait_for(loader.load("third"), timeout=5)
            return other + after, loader.preempted
        finally:
            await loader.aclose()

    assert asyncio.run(scenario()) == (b"otherthird", 0)


def test_prefetch_uses_only_idle_slots() -> None:
    async def scenario() -> list[str]:
        started: list[str] = []
        release = asyncio.Event()

        async def fetch(name: str) -> bytes:
            started.append(name)
            await release.wait()
            return b""

        loader = PriorityLoader(fetch, slots=1)
        try:
            critical = asyncio.ensure_future(loader.load("critical"))
            await asyncio.sleep(0)
            loader.prefetch("guess")
            await asyncio.sleep(0)
            seen = list(started)  # the slot is busy: the guess must wait
            release.set()
            await asyncio.wait_for(critical, timeout=5)
            await asyncio.wait_for(loader.load("guess"), timeout=5)
            return seen + started
        finally:
            await loader.aclose()

    assert asyncio.run(scenario()) == ["critical", "critical", "guess"]


@pytest.mark.parametrize("loader_type", [FifoLoader, PriorityLoader])
def test_aclose_cancels_what_is_still_running(
    loader_type: type[FifoLoader | PriorityLoader],
) -> None:
    async def fetch(name: str) -> bytes:
        await asyncio.Event().wait()  # never finishes
        return b""

    async def scenario() -> int:
        loader = loader_type(fetch, 2)
        loader.prefetch("a")
        loader.prefetch("b")
        await asyncio.sleep(0)
        await asyncio.wait_for(loader.aclose(), timeout=5)
        return len(asyncio.all_tasks())

    assert asyncio.run(scenario()) == 1  # only the test's own task is left


def test_preempt_skips_a_prefetch_that_just_finished() -> None:
    """Two critical loads arrive in the loop step in which prefetch A finishes.

    A's task is done but its done-callback has not run yet, so it is still
    listed as running. The second load must preempt B, which holds a slot,
    not A, whose result is ready and which holds none.
    """
    fetched: list[str] = []
    gate, hold = asyncio.Event(), asyncio.Event()

    async def fetch(name: str) -> bytes:
        fetched.append(name)
        if name == "A":
            await gate.wait()
            await asyncio.sleep(0)  # finishes in the step the loads arrive in
        else:
            await hold.wait()  # B and the critical loads hold their slots
        return name.encode()

    async def scenario() -> PriorityLoader:
        loader = PriorityLoader(fetch, slots=2)
        try:
            loader.prefetch("B")
            loader.prefetch("A")  # the newest prefetch
            await asyncio.sleep(0)
            gate.set()
            loads = [asyncio.create_task(loader.load(n)) for n in ("c1", "c2")]
            async with asyncio.timeout(10):  # both critical loads get a slot
                while not {"c1", "c2"} <= set(fetched):
                    await asyncio.sleep(0.001)
                hold.set()
                assert await asyncio.gather(*loads) == [b"c1", b"c2"]
                assert await loader.load("A") == b"A"
                assert await loader.load("B") == b"B"
        finally:
            await loader.aclose()
        return loader

    loader = asyncio.run(scenario())
    assert fetched.count("A") == 1  # its finished result was kept
    assert fetched.count("B") == 2  # B was preempted and fetched again
    assert loader.preempted == 1
