"""The coordinator: one thread owns the sorter, workers only run steps."""

from __future__ import annotations

import graphlib
import time
from collections import deque
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["BuildReport", "all_nodes", "run_graph"]

N = TypeVar("N", bound=Hashable)
R = TypeVar("R")


@dataclass(frozen=True)
class BuildReport(Generic[N, R]):
    """What a build did.

    Attributes:
        results: The return value of every step that succeeded.
        failed: The exception of every step that failed. A step still running
            when the build's deadline passed fails with `TimeoutError`.
        not_run: Steps that never started: dependents of a failed step, and
            steps that were ready or queued when the build stopped.
        peak_in_flight: The most steps submitted and not yet finished at once.
    """

    results: dict[N, R]
    failed: dict[N, BaseException]
    not_run: frozenset[N]
    peak_in_flight: int

    @property
    def ok(self) -> bool:
        """Whether every step ran and succeeded."""
        return not self.failed and not self.not_run


def all_nodes(graph: Mapping[N, Iterable[N]]) -> set[N]:
    """Every node of `graph`, including those that appear only as predecessors."""
    nodes = set(graph)
    for predecessors in graph.values():
        nodes.update(predecessors)
    return nodes


# --8<-- [start:scheduler]
def run_graph(
    graph: Mapping[N, Collection[N]],
    step: Callable[[N], R],
    executor: Executor,
    *,
    jobs: int,
    timeout: float | None = None,
) -> BuildReport[N, R]:
    """Run `step(node)` for every node, each one after all of its predecessors.

    Args:
        graph: Maps each node to its predecessors (the `graphlib` format).
        step: Builds one node. It runs in `executor` and never sees the graph.
        executor: Where steps run.
        jobs: The most steps submitted at once. Keep it at or below the
            executor's worker count so that no step waits in its queue.
        timeout: Seconds for the whole build. Steps still running then are
            reported as failed with `TimeoutError` and left to finish.

    Returns:
        The report. The first failure stops the build; see `BuildReport`.

    Raises:
        graphlib.CycleError: The graph has a cycle. No step has run.
    """
    sorter = graphlib.TopologicalSorter(graph)
    sorter.prepare()  # raises CycleError before any step runs
    deadline = None if timeout is None else time.monotonic() + timeout
    run: _Run[N, R] = _Run(sorter, step, executor, jobs, deadline)
    try:
        while sorter.is_active() and not run.failed:
            run.ready.extend(sorter.get_ready())
            run.submit_ready()
            run.settle_next()  # wait for one step to finish, then done() it
        run.cancel_queued()  # fail fast: nothing new starts
        while run.in_flight:
            run.settle_next()  # a running step cannot be stopped: let it end
    finally:
        run.cancel_queued()  # also on KeyboardInterrupt in the coordinator
    return run.report(all_nodes(graph))


# --8<-- [end:scheduler]


# --8<-- [start:state]
@dataclass
class _Run(Generic[N, R]):
    """The coordinator's state. Only the coordinator's thread touches it."""

    sorter: graphlib.TopologicalSorter[N]
    step: Callable[[N], R]
    executor: Executor
    jobs: int
    deadline: float | None
    ready: deque[N] = field(default_factory=deque)
    in_flight: dict[Future[R], N] = field(default_factory=dict)
    results: dict[N, R] = field(default_factory=dict)
    failed: dict[N, BaseException] = field(default_factory=dict)
    peak: int = 0

    def submit_ready(self) -> None:
        while self.ready and len(self.in_flight) < self.jobs:
            node = self.ready.popleft()
            self.in_flight[self.executor.submit(self.step, node)] = node
        self.peak = max(self.peak, len(self.in_flight))

    def cancel_queued(self) -> None:
        for future in [f for f in self.in_flight if f.cancel()]:
            del self.in_flight[future]  # it had not started: it never will

    def report(self, nodes: set[N]) -> BuildReport[N, R]:
        not_run = frozenset(nodes - self.results.keys() - self.failed.keys())
        return BuildReport(self.results, self.failed, not_run, self.peak)

    # --8<-- [end:state]
    # --8<-- [start:settle]
    def settle_next(self) -> None:
        left = None
        if self.deadline is not None:
            left = max(0.0, self.deadline - time.monotonic())
        finished, _ = wait(self.in_flight, timeout=left, return_when=FIRST_COMPLETED)
        if not finished:  # the deadline passed
            self.cancel_queued()
            finished = {future for future in self.in_flight if future.done()}
            for future in set(self.in_flight) - finished:  # running: abandon
                node = self.in_flight.pop(future)
                self.failed[node] = TimeoutError(f"{node} still running")
        for future in finished:
            node = self.in_flight.pop(future)
            error = future.exception()
            if error is None:
                self.results[node] = future.result()
                self.sorter.done(node)  # may make its dependents ready
            else:
                self.failed[node] = error


# --8<-- [end:settle]
