"""The cases the measure-first page shows.

    python -m snippets.build_optimization.measure_first.demo critical
    python -m snippets.build_optimization.measure_first.demo rebuild
    python -m snippets.build_optimization.measure_first.demo trace
    python -m snippets.build_optimization.measure_first.demo debug
    python -m snippets.build_optimization.measure_first.demo pytest
    python -m snippets.build_optimization.measure_first.demo cmake_profile

Every build is a clean one in a temporary directory, with the real CMake,
Ninja, gcc and GNU make. The output names steps, reasons and counts; the
seconds they took vary from run to run and are not printed.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from snippets.build_optimization.measure_first import (
    Step,
    bottleneck,
    durations_report,
    ninja_graph,
    profile,
    read_ninja_log,
    remake_reasons,
    runs,
    slowest_in_junit,
    steps,
    trace_reasons,
)
from snippets.build_optimization.measure_first.projects import (
    cmake_configure,
    make,
    ninja,
    run_pytest,
    write_c_project,
    write_make_project,
    write_test_suite,
)
from snippets.support.build_optimization_gate import require_tool
from snippets.support.cases import run_cases

__all__: list[str] = []  # the cases a page shows; the API is the package


@contextmanager
def built() -> Iterator[Path]:
    """A clean CMake + Ninja build of the page's project: its build directory."""
    for tool in ("cmake", "ninja", "gcc"):
        require_tool(tool)
    with tempfile.TemporaryDirectory() as scratch:
        source = write_c_project(Path(scratch) / "src")
        build = Path(scratch) / "build"
        cmake_configure(source, build)
        ninja(build, jobs=2)
        yield build


def yes(condition: bool) -> str:
    return "yes" if condition else "no"


def shown(step: Step, build: Path) -> str:
    """A step's outputs relative to the build directory, each once."""
    names = {output.removeprefix(f"{build}/") for output in step.outputs}
    return " ".join(sorted(names))


def show_critical() -> list[str]:
    """Total work against the critical path of one clean build."""
    with built() as build:
        log = read_ninja_log(build / ".ninja_log")
        done = steps(runs(log)[-1])
        result = profile(done, ninja_graph(build))
    lines = [
        "$ ninja -j2   (a clean build)",
        f".ninja_log: {len(log)} lines, {len(runs(log))} build, {result.steps} steps",
        f"critical path ({len(result.critical)} steps, first step first):",
        *(f"  {shown(step, build)}" for step in result.critical),
        f"steps off the critical path: {result.steps - len(result.critical)}",
        f"total work >= critical path: {yes(result.total_ms >= result.critical_ms)}",
    ]
    for jobs in (1, 16):
        lines.append(f"with -j{jobs}, the limit is the {bottleneck(result, jobs)}")
    return lines


def show_rebuild() -> list[str]:
    """An edit and a second build: the log now holds two builds."""
    with built() as build:
        (build.parent / "src" / "util_0.c").write_text(
            "int util_0_0(int x) { return x; }\n"
        )
        ninja(build, jobs=2)
        log = read_ninja_log(build / ".ninja_log")
    last = steps(runs(log)[-1])
    return [
        "$ edit util_0.c; ninja -j2",
        f".ninja_log: {len(log)} lines, {len({e.output for e in log})} outputs",
        f"builds in the log: {len(runs(log))}",
        f"steps of the last build: {len(last)}",
        *sorted(f"  {shown(step, build)}" for step in last),
    ]


def make_twice(makefile: str) -> list[str]:
    require_tool("make")
    with tempfile.TemporaryDirectory() as scratch:
        root = write_make_project(Path(scratch), makefile)
        make(root)
        second = make(root, "--trace")
    reasons = trace_reasons(second)
    lines = [f"$ make; make --trace   ({makefile})"]
    lines += [line for line in second.splitlines() if "target '" in line]
    lines.append(f"recipes run by the second make: {len(reasons)}")
    return lines


def show_trace() -> list[str]:
    """The second, "nothing changed" make: with version.h rewritten, and fixed."""
    return [*make_twice("stamp.mk"), "", *make_twice("stamp_fixed.mk")]


def show_debug() -> list[str]:
    """``make --debug=b`` on the second build: the newer prerequisite, named."""
    require_tool("make")
    with tempfile.TemporaryDirectory() as scratch:
        root = write_make_project(Path(scratch), "stamp.mk")
        make(root)
        second = make(root, "--debug=b").splitlines()
    lines = ["$ make; make --debug=b | grep -E 'newer|Must remake'"]
    lines += [
        line.strip() for line in second if "newer than" in line or "Must remake" in line
    ]
    found = remake_reasons(second)
    lines.append(f"targets remade because a prerequisite is newer: {len(found)}")
    return lines


def show_pytest() -> list[str]:
    """``--durations`` and ``--durations-min``, then the JUnit XML's times."""
    with tempfile.TemporaryDirectory() as scratch:
        root = write_test_suite(Path(scratch))
        report = root / "report.xml"
        output = run_pytest(
            root, "-q", "--durations=3", "--durations-min=0.25", f"--junitxml={report}"
        )
        phases = durations_report(output)
        hidden = [line for line in output.splitlines() if "hidden" in line]
        slowest = slowest_in_junit(report, 2)
    return [
        "$ pytest --durations=3 --durations-min=0.25 --junitxml=report.xml",
        "slowest phases, slowest first (seconds not shown):",
        *(f"  {phase.when:<8} {phase.test}" for phase in phases),
        *(f"  {line}" for line in hidden),
        "slowest tests in report.xml (setup + call + teardown):",
        *(f"  {test.test}" for test in slowest),
    ]


def show_cmake_profile() -> list[str]:
    """``cmake --profiling-format=google-trace``: one event per CMake command."""
    require_tool("cmake")
    with tempfile.TemporaryDirectory() as scratch:
        source = write_c_project(Path(scratch) / "src")
        trace = Path(scratch) / "configure.json"
        cmake_configure(source, Path(scratch) / "build", trace=trace)
        events = json.loads(trace.read_text())
    begins = [event for event in events if event["ph"] == "B"]
    ends = [event for event in events if event["ph"] == "E"]
    mine = str(source / "CMakeLists.txt")
    ours = {e["name"] for e in begins if e["args"]["location"].startswith(mine)}
    return [
        "$ cmake --profiling-format=google-trace --profiling-output=configure.json",
        f"event phases: {', '.join(sorted({event['ph'] for event in events}))}",
        f"every begin has an end: {yes(len(begins) == len(ends))}",
        f"fields of a begin event: {', '.join(sorted(begins[0]))}",
        f"args of a begin event: {', '.join(sorted(begins[0]['args']))}",
        f"commands from CMakeLists.txt: {', '.join(sorted(ours))}",
        f"commands from CMake's own modules: {yes(len(begins) > len(ours))}",
    ]


if __name__ == "__main__":
    cases = {"critical": show_critical, "rebuild": show_rebuild, "trace": show_trace}
    cases |= {
        "debug": show_debug,
        "pytest": show_pytest,
        "cmake_profile": show_cmake_profile,
    }
    sys.exit(run_cases(cases))
