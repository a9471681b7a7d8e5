"""Deadlock-free executor use: never block a pool's worker on the same pool.

A step that submits its dependencies to its own bounded pool and waits on
their futures holds a worker while it waits. Once every worker waits on a
future queued behind it, nothing runs again and nothing fails. The fixes keep
waiting out of the workers:

* `build_coordinated`: one coordinator resolves dependencies and submits a
  step only when its inputs are done (the ready-set DAG scheduler), so every
  worker always runs a step that can finish.
* `build_async`: in asyncio, each node's task awaits its dependencies' tasks in
  the event loop, and only then runs the blocking step with
  `asyncio.to_thread`, inside a slot of a semaphore.
* `result_or_abandon`: if you inherit code that nests, bound the wait and, when
  it expires, stop the pool so its stuck workers can exit.
"""

from __future__ import annotations

import asyncio
import graphlib
import sys
import threading
from collections.abc import Callable, Collection, Hashable, Mapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import TypeVar

from snippets.build_optimization.dag_scheduler import BuildReport, run_graph
from snippets.support.cases import run_cases

__all__ = ["build_async", "build_coordinated", "result_or_abandon"]

N = TypeVar("N", bound=Hashable)
R = TypeVar("R")


# --8<-- [start:nested]
def build_nested(
    pool: Executor, graph: Mapping[N, Collection[N]], step: Callable[[N], R], node: N
) -> R:
    """The broken version, kept for the test: a step waits on its own pool.

    Each waiting call holds a worker. A chain deeper than the pool has
    workers never finishes: with `max_workers=2`, `app -> lib -> core` leaves
    `core` queued behind two workers that wait for it.
    """
    inputs: list[Future[R]] = []
    for dep in graph.get(node, ()):
        inputs.append(pool.submit(build_nested, pool, graph, step, dep))
    for future in inputs:
        future.result()  # blocks this worker until another worker is free
    return step(node)


# --8<-- [end:nested]


# --8<-- [start:abandon]
def result_or_abandon(pool: ThreadPoolExecutor, future: Future[R], timeout: float) -> R:
    """Wait for `future`; if it is not done in time, stop `pool` and raise.

    `shutdown(wait=False, cancel_futures=True)` cancels every queued future,
    so a worker blocked in `.result()` on one of them gets `CancelledError`
    and returns. The workers can then exit: the interpreter joins a
    `ThreadPoolExecutor`'s threads before it exits, so a pool left stuck would
    also hang the process at exit.

    Raises:
        TimeoutError: `future` was not done within `timeout` seconds.
    """
    try:
        return future.result(timeout=timeout)
    except TimeoutError:
        pool.shutdown(wait=False, cancel_futures=True)
        raise


# --8<-- [end:abandon]


# --8<-- [start:coordinated]
def build_coordinated(
    graph: Mapping[N, Collection[N]], step: Callable[[N], R], *, workers: int
) -> BuildReport[N, R]:
    """Build `graph` on a pool of `workers` threads with nothing waiting inside.

    The coordinator (`run_graph` from the ready-set DAG scheduler) submits a
    step only after its inputs are done, so a worker never waits for another
    worker and any pool size, even one, finishes any acyclic graph.
    """
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return run_graph(graph, step, pool, jobs=workers)


# --8<-- [end:coordinated]


# --8<-- [start:asyncio]
async def build_async(
    graph: Mapping[N, Collection[N]],
    step: Callable[[N], R],
    *,
    jobs: int,
    timeout: float | None = None,
) -> dict[N, R]:
    """Build every node in one TaskGroup; a node's task awaits its inputs' tasks.

    The waiting happens in the event loop: a node waiting for its inputs holds
    no thread and no slot. Only then does it take one of `jobs` slots and run
    the blocking step in a thread.

    Raises:
        graphlib.CycleError: The graph has a cycle. No step has run.
        ExceptionGroup: A step failed. The TaskGroup cancelled every other
            task; steps already running in a thread finish on their own.
        TimeoutError: The build did not finish within `timeout` seconds.
    """
    order = list(graphlib.TopologicalSorter(graph).static_order())  # CycleError
    slots = asyncio.Semaphore(jobs)
    tasks: dict[N, asyncio.Task[R]] = {}

    async def build(node: N, inputs: list[asyncio.Task[R]]) -> R:
        for task in inputs:
            await task  # waits in the event loop, not in a worker thread
        async with slots:
            return await asyncio.to_thread(step, node)

    async with asyncio.timeout(timeout), asyncio.TaskGroup() as group:
        for node in order:  # inputs first, so their tasks already exist
            inputs = [tasks[dep] for dep in graph.get(node, ())]
            tasks[node] = group.create_task(build(node, inputs))
    return {node: task.result() for node, task in tasks.items()}


# --8<-- [end:asyncio]


# --8<-- [start:nested-demo]
CHAIN: dict[str, set[str]] = {"app": {"lib"}, "lib": {"core"}, "core": set()}


class Steps:
    """A step that records the order in which nodes were built."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, node: str) -> str:
        with self._lock:
            self.order.append(node)
        return node


def nested(workers: int, timeout: float) -> str:
    """Build CHAIN by nesting on a pool of `workers`; say how it ended."""
    steps = Steps()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nested")
    app = pool.submit(build_nested, pool, CHAIN, steps, "app")
    try:
        result_or_abandon(pool, app, timeout)
    except TimeoutError:
        return f"no result after {timeout} s, {len(steps.order)} steps ran"
    finally:
        pool.shutdown(wait=True)
    return "built " + ", ".join(steps.order)


# --8<-- [end:nested-demo]


# --8<-- [start:demo]
def show_demo(timeout: float = 2.0) -> list[str]:
    """Build the chain app -> lib -> core four ways."""
    coordinated, in_loop = Steps(), Steps()
    report = build_coordinated(CHAIN, coordinated, workers=2)
    asyncio.run(build_async(CHAIN, in_loop, jobs=2))
    return [
        f"nested .result(), 2 workers:  {nested(2, timeout)}",
        f"nested .result(), 3 workers:  {nested(3, timeout)}",
        f"coordinator, 2 workers:       built {', '.join(coordinated.order)}"
        + ("" if report.ok else " (failed)"),
        f"asyncio TaskGroup, 2 slots:   built {', '.join(in_loop.order)}",
    ]


# --8<-- [end:demo]

if __name__ == "__main__":
    sys.exit(run_cases({"demo": show_demo}))
