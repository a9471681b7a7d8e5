"""The cases the DAG-scheduler page shows.

    python -m snippets.build_optimization.dag_scheduler.demo break
    python -m snippets.build_optimization.dag_scheduler.demo demo
    python -m snippets.build_optimization.dag_scheduler.demo failure

The steps a process pool runs (`DigestStep`) live in an importable module,
`steps`, not here: a worker process unpickles them by module name, and this
file runs as ``__main__``.
"""

from __future__ import annotations

import graphlib
import multiprocessing
import sys
import tempfile
import threading
from collections.abc import Callable, Collection, Hashable, Mapping
from concurrent.futures import (
    Executor,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from pathlib import Path
from typing import TypeVar

from snippets.build_optimization.dag_scheduler import (
    BuildReport,
    all_nodes,
    run_graph,
)
from snippets.build_optimization.dag_scheduler.steps import (
    CompileStep,
    DigestStep,
    StepFailed,
)
from snippets.support.cases import run_cases

__all__: list[str] = []  # the cases a page shows; the API is the package

N = TypeVar("N", bound=Hashable)
R = TypeVar("R")


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
def build_three_ways(workdir: Path) -> list[str]:
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


def show_demo() -> list[str]:
    """`build_three_ways` in a temporary directory."""
    with tempfile.TemporaryDirectory() as workdir:
        return build_three_ways(Path(workdir))


# --8<-- [end:demo]


def held_until_dependents_ran(
    step: Callable[[str], R], held: str
) -> Callable[[str], R]:
    """Start every step at once, then hold `held` until its dependents ended."""
    all_started = threading.Barrier(len(GRAPH))
    dependents = {node for node, preds in GRAPH.items() if held in preds}
    finished: set[str] = set()
    all_finished = threading.Event()
    lock = threading.Lock()

    def delayed(node: str) -> R:
        all_started.wait(timeout=10)  # every step is running now
        if node == held and not all_finished.wait(timeout=10):
            raise TimeoutError("the dependents never ran")
        try:
            return step(node)
        finally:
            with lock:
                finished.add(node)
                if dependents <= finished:
                    all_finished.set()

    return delayed


def show_break() -> list[str]:
    """Every step submitted at once; config.h held until the others ended."""
    with tempfile.TemporaryDirectory() as workdir:
        step = held_until_dependents_ran(CompileStep(Path(workdir), GRAPH), "config.h")
        with ThreadPoolExecutor(max_workers=len(GRAPH)) as pool:
            report = run_all_at_once(GRAPH, step, pool)
    return summarize("submit everything at once", report)


def fail_parse_while_siblings_run(workdir: Path) -> Callable[[str], Path]:
    """CompileStep, except that parse.o fails once util.o and main.o run."""
    siblings_started = threading.Barrier(3)

    def step(node: str) -> Path:
        if node in {"util.o", "parse.o", "main.o"}:
            siblings_started.wait(timeout=10)  # all three are running now
        if node == "parse.o":
            raise StepFailed("parse.c:12: error: expected ';' before '}'")
        return CompileStep(workdir, GRAPH)(node)

    return step


def show_failure() -> list[str]:
    """parse.o fails while its siblings run: who finishes, who never starts."""
    with tempfile.TemporaryDirectory() as workdir:
        step = fail_parse_while_siblings_run(Path(workdir))
        with ThreadPoolExecutor(max_workers=4) as pool:
            report = run_graph(GRAPH, step, pool, jobs=4)
    return summarize("parse.o fails", report)


if __name__ == "__main__":
    sys.exit(
        run_cases({"break": show_break, "demo": show_demo, "failure": show_failure})
    )
