"""Tests for snippets/build_optimization/dag_scheduler/.

The steps are real: a "compiler" module run in a subprocess that reads its
inputs' files and writes its own, and a CPU-bound digest in worker processes.
Timing is made deterministic with events and barriers: the breaking run holds
the first step until every step that needs its output has finished.
"""

from __future__ import annotations

import graphlib
import itertools
import multiprocessing
import subprocess
import sys
import threading
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest

from snippets.build_optimization.dag_scheduler import run_graph
from snippets.build_optimization.dag_scheduler.demo import (
    GRAPH,
    build_three_ways,
    fail_parse_while_siblings_run,
    held_until_dependents_ran,
    run_all_at_once,
)
from snippets.build_optimization.dag_scheduler.steps import (
    CompileStep,
    DigestStep,
    StepFailed,
)
from tests.conftest import ROOT

DEMO = "snippets.build_optimization.dag_scheduler.demo"
EDGES = [(pred, node) for node, preds in GRAPH.items() for pred in preds]


class Recorder:
    """Wrap a step: record when it starts and ends, and how many run at once.

    Ticks come from one counter under a lock, so "A ended before B started"
    is an exact comparison, not a clock reading.
    """

    def __init__(self, step: Callable[[str], object]) -> None:
        self.step = step
        self.start: dict[str, int] = {}
        self.end: dict[str, int] = {}
        self.running = 0
        self.peak = 0
        self._ticks = itertools.count()
        self._lock = threading.Lock()

    def __call__(self, node: str) -> object:
        with self._lock:
            self.start[node] = next(self._ticks)
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            return self.step(node)
        finally:
            with self._lock:
                self.end[node] = next(self._ticks)
                self.running -= 1

    def early_starts(self, edges: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Edges whose dependent started before its predecessor had ended."""
        return [
            (pred, node)
            for pred, node in edges
            if node in self.start
            and (pred not in self.end or self.start[node] < self.end[pred])
        ]


def levels(graph: Mapping[str, Collection[str]]) -> list[tuple[str, ...]]:
    """The graph in waves: each wave is what `get_ready()` returns at once."""
    sorter = graphlib.TopologicalSorter(graph)
    sorter.prepare()
    waves = []
    while sorter.is_active():
        wave = sorter.get_ready()
        waves.append(wave)
        sorter.done(*wave)
    return waves


# -- see it break ----------------------------------------------------------- #


def test_submitting_everything_at_once_reads_missing_artifacts(
    tmp_path: Path,
) -> None:
    recorder = Recorder(
        held_until_dependents_ran(CompileStep(tmp_path, GRAPH), "config.h")
    )
    with ThreadPoolExecutor(max_workers=len(GRAPH)) as pool:
        report = run_all_at_once(GRAPH, recorder, pool)

    assert set(report.results) == {"config.h"}
    assert len(report.failed) == len(GRAPH) - 1
    assert all(isinstance(e, StepFailed) for e in report.failed.values())
    assert all("FileNotFoundError" in str(e) for e in report.failed.values())
    assert len(recorder.early_starts(EDGES)) == len(EDGES)  # every edge violated
    assert not (tmp_path / "app").exists()


# -- the pattern holds ------------------------------------------------------- #


def test_every_step_starts_after_its_predecessors_and_width_runs_at_once(
    tmp_path: Path,
) -> None:
    waves = levels(GRAPH)
    width = max(len(wave) for wave in waves)
    widest = {node for wave in waves if len(wave) == width for node in wave}
    meet = threading.Barrier(width)  # the widest wave must really overlap

    def compile_step(node: str) -> object:
        if node in widest:
            meet.wait(timeout=10)
        return CompileStep(tmp_path, GRAPH)(node)

    # The same delay on config.h as in the breaking run: here nothing waits
    # for it, so it is a fixed pause, and no dependent may start during it.
    gate = threading.Event()

    def delayed(node: str) -> object:
        if node == "config.h":
            gate.wait(timeout=0.3)
        return compile_step(node)

    recorder = Recorder(delayed)
    with ThreadPoolExecutor(max_workers=width + 1) as pool:
        report = run_graph(GRAPH, recorder, pool, jobs=width + 1)

    assert report.ok, report.failed
    assert len(EDGES) == 7
    assert recorder.early_starts(EDGES) == []
    assert width == 3
    assert recorder.peak == width
    assert report.peak_in_flight == width
    assert (tmp_path / "app").read_text() == (
        "app(libparse.a(parse.o(config.h) util.o(config.h)) main.o(config.h))"
    )


def test_jobs_bounds_the_steps_running_at_once(tmp_path: Path) -> None:
    recorder = Recorder(CompileStep(tmp_path, GRAPH))
    with ThreadPoolExecutor(max_workers=4) as pool:
        report = run_graph(GRAPH, recorder, pool, jobs=2)
    assert report.ok
    assert recorder.peak <= 2
    assert report.peak_in_flight == 2
    assert recorder.early_starts(EDGES) == []


def test_process_pool_runs_cpu_bound_steps_in_dependency_order(
    tmp_path: Path,
) -> None:
    parallel, serial = tmp_path / "parallel", tmp_path / "serial"
    parallel.mkdir()
    serial.mkdir()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        report = run_graph(GRAPH, DigestStep(parallel, GRAPH), pool, jobs=2)

    one_by_one = DigestStep(serial, GRAPH)
    expected = {
        node: one_by_one(node)
        for node in graphlib.TopologicalSorter(GRAPH).static_order()
    }
    assert report.ok, report.failed
    assert report.results == expected
    assert report.peak_in_flight == 2


def test_a_cycle_raises_before_any_step_runs(tmp_path: Path) -> None:
    cycle = {"app": {"lib"}, "lib": {"codegen"}, "codegen": {"app"}, "x": set()}
    recorder = Recorder(CompileStep(tmp_path, cycle))
    with (
        ThreadPoolExecutor(max_workers=2) as pool,
        pytest.raises(graphlib.CycleError) as raised,
    ):
        run_graph(cycle, recorder, pool, jobs=2)
    assert recorder.start == {}  # not even "x", which has no inputs
    assert set(raised.value.args[1]) == {"app", "lib", "codegen"}


def test_a_failure_stops_dependents_and_reports_what_never_ran(
    tmp_path: Path,
) -> None:
    recorder = Recorder(fail_parse_while_siblings_run(tmp_path))
    with ThreadPoolExecutor(max_workers=4) as pool:
        report = run_graph(GRAPH, recorder, pool, jobs=4)

    assert set(report.failed) == {"parse.o"}
    assert set(report.results) == {"config.h", "util.o", "main.o"}  # they ran
    assert report.not_run == {"libparse.a", "app"}
    assert set(recorder.start) == set(report.results) | set(report.failed)
    assert "expected ';'" in str(report.failed["parse.o"])


def test_a_failure_leaves_ready_steps_unstarted(tmp_path: Path) -> None:
    first_sibling: list[str] = []

    def step(node: str) -> object:
        if node != "config.h" and not first_sibling:
            first_sibling.append(node)
            raise StepFailed("compiler crashed")
        return CompileStep(tmp_path, GRAPH)(node)

    recorder = Recorder(step)
    with ThreadPoolExecutor(max_workers=1) as pool:
        report = run_graph(GRAPH, recorder, pool, jobs=1)

    assert set(recorder.start) == {"config.h", *first_sibling}
    assert set(report.failed) == set(first_sibling)
    assert len(report.not_run) == len(GRAPH) - 2


def test_the_deadline_cancels_queued_steps_and_abandons_running_ones(
    tmp_path: Path,
) -> None:
    # Ordering, not a stopwatch: "slow" holds its worker until the test
    # releases it, which happens only after run_graph returned.
    release, slow_ended = threading.Event(), threading.Event()
    graph = {"slow": set(), "queued": set(), "later": {"slow", "queued"}}

    def step(node: str) -> object:
        if node == "slow":
            release.wait(timeout=60)
            slow_ended.set()
        return node

    recorder = Recorder(step)
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        # jobs=2 with one worker: "queued" waits in the executor's queue.
        report = run_graph(graph, recorder, pool, jobs=2, timeout=2.0)
        returned_while_running = not slow_ended.is_set()
    finally:
        release.set()
        pool.shutdown(wait=True)

    assert returned_while_running  # the deadline did not wait for "slow"
    assert set(report.failed) == {"slow"}
    assert isinstance(report.failed["slow"], TimeoutError)
    assert report.not_run == {"queued", "later"}
    assert set(recorder.start) == {"slow"}  # "queued" was cancelled, not run


# -- the demo ----------------------------------------------------------------- #


def test_the_demo_builds_on_threads_and_on_spawned_processes(tmp_path: Path) -> None:
    lines = build_three_ways(tmp_path)
    assert lines[0] == "threads, subprocess compiler: 6 built, 0 failed, 0 not run"
    assert "processes, CPU-bound digest: 6 built, 0 failed, 0 not run" in lines
    assert lines[-1].startswith("CycleError ")


def test_the_demo_runs_as_main_with_a_process_pool() -> None:
    # As __main__, the demo's process pool must still unpickle DigestStep.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snippets.build_optimization.dag_scheduler.demo",
            "demo",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "processes, CPU-bound digest: 6 built, 0 failed, 0 not run" in (
        result.stdout
    )
