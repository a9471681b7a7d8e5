"""Ready-set DAG scheduler: run a build graph as parallel as its edges allow.

One coordinator owns a `graphlib.TopologicalSorter`. It submits the nodes that
`get_ready()` returns to an executor, waits for the first step to finish, and
marks that node `done()`, which may make its dependents ready. Workers only run
steps; they never touch the sorter. So:

* a step starts only after every one of its predecessors finished successfully;
* a cycle is reported by `prepare()` before any step runs;
* the first failure stops the build: nothing new starts, queued steps are
  cancelled, and the report names every step that never ran.

The same coordinator drives a `ThreadPoolExecutor` (steps that wait on a
subprocess, such as a compiler) or a `ProcessPoolExecutor` (CPU-bound steps
written in Python).
"""

from __future__ import annotations

import graphlib
import hashlib
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

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


# --8<-- [start:naive]
def run_all_at_once(
    graph: Mapping[N, Collection[N]], step: Callable[[N], R], executor: Executor
) -> BuildReport[N, R]:
    """The broken runner, kept for the test: submit every step at once.

    A step starts as soon as a worker is free, whether its inputs exist or not.
    This is `make -j` with an undeclared prerequisite, or `executor.map` over
    the build steps.
    """
    futures = {executor.submit(step, node): node for node in all_nodes(graph)}
    wait(futures)
    results: dict[N, R] = {}
    failed: dict[N, BaseException] = {}
    for future, node in futures.items():
        error = future.exception()
        if error is None:
            results[node] = future.result()
        else:
            failed[node] = error
    return BuildReport(results, failed, frozenset(), len(futures))


# --8<-- [end:naive]


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


# --8<-- [start:compiler]
COMPILER = """\
import os, sys
target, *inputs = sys.argv[1:]
parts = []
for path in inputs:
    try:
        with open(path, encoding="utf-8") as source:
            parts.append(source.read())
    except FileNotFoundError:
        sys.exit(f"FileNotFoundError: {os.path.basename(path)}")
text = os.path.basename(target) + (f"({' '.join(parts)})" if parts else "")
with open(target + ".tmp", "w", encoding="utf-8") as out:
    out.write(text)
os.replace(target + ".tmp", target)  # readers never see half a file
"""
# --8<-- [end:compiler]

# --8<-- [start:compile]


class StepFailed(Exception):
    """A step's command failed; the message is the last line it wrote to stderr."""


@dataclass(frozen=True)
class CompileStep:
    """Build node `n` into the file `out_dir / n` with a "compiler" subprocess.

    The inputs are the files of the node's predecessors. The compiler writes
    the node's name followed by its inputs' contents in parentheses, so the
    final artifact spells out the order the build used.
    """

    out_dir: Path
    graph: Mapping[str, Collection[str]]
    timeout: float = 30.0

    def __call__(self, node: str) -> Path:
        target = self.out_dir / node
        inputs = [str(self.out_dir / d) for d in sorted(self.graph.get(node, ()))]
        command = [sys.executable, "-c", COMPILER, str(target), *inputs]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=self.timeout
        )
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines()
            raise StepFailed(lines[-1] if lines else f"exit status {done.returncode}")
        return target


# --8<-- [end:compile]


# --8<-- [start:digest]
@dataclass(frozen=True)
class DigestStep:
    """A CPU-bound step in Python: an iterated SHA-256 over the inputs' digests.

    Pure-Python loops hold the GIL, so such steps only run in parallel in a
    `ProcessPoolExecutor`. The step and its arguments are pickled to the
    worker: keep it a module-level class with plain fields.
    """

    out_dir: Path
    graph: Mapping[str, Collection[str]]
    rounds: int = 50_000

    def __call__(self, node: str) -> str:
        digest = hashlib.sha256(node.encode())
        for dep in sorted(self.graph.get(node, ())):
            digest.update((self.out_dir / f"{dep}.sha256").read_bytes())
        value = digest.digest()
        for _ in range(self.rounds):
            value = hashlib.sha256(value).digest()
        target = self.out_dir / f"{node}.sha256"
        target.with_suffix(".tmp").write_text(value.hex())
        os.replace(target.with_suffix(".tmp"), target)
        return value.hex()[:12]


# --8<-- [end:digest]


# --8<-- [start:graph]
GRAPH: dict[str, set[str]] = {
    "config.h": set(),
    "util.o": {"config.h"},
    "parse.o": {"config.h"},
    "main.o": {"config.h"},
    "libparse.a": {"util.o", "parse.o"},
    "app": {"libparse.a", "main.o"},
}


def summarize(title: str, report: BuildReport[str, R]) -> list[str]:
    """The report as a few sorted lines."""
    counts = f"{len(report.results)} built, {len(report.failed)} failed"
    lines = [f"{title}: {counts}, {len(report.not_run)} not run"]
    lines += [f"  failed   {n}: {e}" for n, e in sorted(report.failed.items())]
    if report.not_run:
        lines.append(f"  not run  {', '.join(sorted(report.not_run))}")
    lines.append(f"  peak in flight: {report.peak_in_flight}")
    return lines


# --8<-- [end:graph]


# --8<-- [start:demo]
def demo(workdir: Path) -> list[str]:
    """Compile GRAPH on threads, digest it on processes, then try a cycle."""
    objects, digests = workdir / "obj", workdir / "sha"
    objects.mkdir()
    digests.mkdir()
    with ThreadPoolExecutor(max_workers=4) as threads:
        built = run_graph(GRAPH, CompileStep(objects, GRAPH), threads, jobs=4)
    lines = summarize("threads, subprocess compiler", built)
    lines.append(f"  app: {(objects / 'app').read_text()}")
    context = multiprocessing.get_context("spawn")  # picklable steps only
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as processes:
        hashed = run_graph(GRAPH, DigestStep(digests, GRAPH), processes, jobs=2)
    lines += summarize("processes, CPU-bound digest", hashed)
    lines.append(f"  app: {hashed.results['app']}")
    cycle = {"app": {"lib"}, "lib": {"codegen"}, "codegen": {"app"}}
    try:
        with ThreadPoolExecutor(max_workers=1) as threads:
            run_graph(cycle, CompileStep(objects, cycle), threads, jobs=1)
    except graphlib.CycleError as error:
        lines.append(f"CycleError {error.args[1]} before any step ran")
    return lines


def main() -> None:
    """Run the demo in a temporary directory and print its lines."""
    with tempfile.TemporaryDirectory() as workdir:
        print(*demo(Path(workdir)), sep="\n")


# --8<-- [end:demo]

if __name__ == "__main__":
    # Run the package's copy of the module, not __main__'s, so that worker
    # processes unpickle DigestStep from an importable module name.
    from snippets.build_optimization.dag_scheduler import main as package_main

    package_main()
