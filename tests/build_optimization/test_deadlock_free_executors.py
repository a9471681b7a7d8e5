"""Tests for snippets/build_optimization/deadlock_free_executors.py.

The deadlock is real: two workers of a `ThreadPoolExecutor` block in
`.result()` on a future queued behind them. `future.result(timeout=...)`
detects it, and cancelling the queued futures releases the workers, so the
test ends and the interpreter can still exit.
"""

from __future__ import annotations

import asyncio
import graphlib
import threading
from concurrent.futures import CancelledError, ThreadPoolExecutor

import pytest

from snippets.build_optimization.deadlock_free_executors import (
    CHAIN,
    Steps,
    build_async,
    build_coordinated,
    build_nested,
    nested,
    result_or_abandon,
    show_demo,
)


def chain(length: int) -> dict[str, set[str]]:
    """step0 <- step1 <- ... : each step needs the one before it."""
    return {f"step{i}": ({f"step{i - 1}"} if i else set()) for i in range(length)}


def pool_threads(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix + "_")]


# -- see it break ----------------------------------------------------------- #


def test_waiting_on_the_own_pool_deadlocks_two_workers() -> None:
    steps = Steps()
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="stuck")
    app = pool.submit(build_nested, pool, CHAIN, steps, "app")
    try:
        with pytest.raises(TimeoutError):
            app.result(timeout=2)  # app waits on lib, lib waits on core
        assert len(pool_threads("stuck")) == 2  # both workers are blocked
        assert steps.order == []  # core is queued, and no worker is free
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # releases both
    assert isinstance(app.exception(timeout=5), CancelledError)
    for thread in pool_threads("stuck"):
        thread.join(timeout=5)
        assert not thread.is_alive(), f"{thread.name} is still blocked"
    assert steps.order == []


@pytest.mark.parametrize(("workers", "finishes"), [(1, False), (2, False), (3, True)])
def test_nesting_needs_one_worker_per_level_of_the_graph(
    workers: int, finishes: bool
) -> None:
    outcome = nested(workers, timeout=1.0)
    if finishes:
        assert outcome == "built core, lib, app"
    else:
        assert outcome == "no result after 1.0 s, 0 steps ran"


def test_result_or_abandon_releases_the_stuck_workers() -> None:
    steps = Steps()
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="abandon")
    app = pool.submit(build_nested, pool, CHAIN, steps, "app")
    with pytest.raises(TimeoutError):
        result_or_abandon(pool, app, timeout=0.5)
    assert isinstance(app.exception(timeout=5), CancelledError)
    for thread in pool_threads("abandon"):
        thread.join(timeout=5)
        assert not thread.is_alive()
    with pytest.raises(RuntimeError):
        pool.submit(steps, "core")  # the pool is shut down for good


# -- the pattern holds ------------------------------------------------------- #


def test_the_coordinator_finishes_with_the_same_pool_size() -> None:
    steps = Steps()
    report = build_coordinated(CHAIN, steps, workers=2)
    assert report.ok
    assert steps.order == ["core", "lib", "app"]


def test_the_coordinator_finishes_a_deep_graph_on_one_worker() -> None:
    graph = chain(20)
    steps = Steps()
    report = build_coordinated(graph, steps, workers=1)
    assert report.ok
    assert steps.order == [f"step{i}" for i in range(20)]


def test_the_asyncio_build_finishes_with_two_slots() -> None:
    graph = chain(20)
    steps = Steps()
    results = asyncio.run(build_async(graph, steps, jobs=2, timeout=10))
    assert steps.order == [f"step{i}" for i in range(20)]
    assert results == {node: node for node in graph}


def test_the_asyncio_build_never_runs_more_steps_than_slots() -> None:
    wide = {"root": set(), **{f"leaf{i}": {"root"} for i in range(8)}}
    running = peak = 0
    lock = threading.Lock()
    two_inside = threading.Barrier(2)

    def step(node: str) -> str:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            if node != "root":
                two_inside.wait(timeout=5)  # two steps overlap, every time
            return node
        finally:
            with lock:
                running -= 1

    results = asyncio.run(build_async(wide, step, jobs=2, timeout=10))
    assert len(results) == 9
    assert peak == 2


def test_the_asyncio_build_stops_dependents_of_a_failed_step() -> None:
    steps = Steps()

    def step(node: str) -> str:
        if node == "lib":
            raise OSError("linker crashed")
        return steps(node)

    with pytest.raises(ExceptionGroup) as raised:
        asyncio.run(build_async(CHAIN, step, jobs=2, timeout=10))
    assert raised.group_contains(OSError, match="linker crashed")
    assert steps.order == ["core"]  # app never ran


def test_the_asyncio_build_rejects_a_cycle_before_running_anything() -> None:
    steps = Steps()
    with pytest.raises(graphlib.CycleError):
        asyncio.run(build_async({"a": {"b"}, "b": {"a"}}, steps, jobs=2))
    assert steps.order == []


# -- the demo ----------------------------------------------------------------- #


def test_the_demo_builds_the_chain_three_ways_and_hangs_once() -> None:
    lines = show_demo(timeout=2.0)
    assert lines[0].endswith("no result after 2.0 s, 0 steps ran")
    assert all(line.endswith("built core, lib, app") for line in lines[1:])
