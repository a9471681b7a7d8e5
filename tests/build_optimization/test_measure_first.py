"""Tests for snippets/build_optimization/measure_first/.

One clean CMake + Ninja build of the page's project (then an edit and a
second build), GNU make on the version-header Makefiles, and pytest on a
small suite. The assertions are about structure: which steps, which chain,
which reasons; the measured milliseconds are printed, never compared with a
number.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from snippets.build_optimization.measure_first import (
    LogEntry,
    Step,
    bottleneck,
    critical_path,
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
from snippets.support.services import ServiceUnavailable
from tests.conftest import unavailable


def need(*tools: str) -> None:
    for tool in tools:
        try:
            require_tool(tool)
        except ServiceUnavailable as error:
            unavailable(tool, str(error))


@dataclass
class Measured:
    build: Path
    clean_log: str  # .ninja_log after the clean build
    log: list[LogEntry]  # after an edit of util_0.c and a second build
    trace: list[dict[str, object]]  # cmake --profiling-output of the configure
    source: Path


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Measured]:
    need("cmake", "ninja", "gcc")
    where = tmp_path_factory.mktemp("measure")
    source = write_c_project(where / "src")
    build = where / "build"
    cmake_configure(source, build, trace=where / "configure.json")
    ninja(build, jobs=2)
    clean_log = (build / ".ninja_log").read_text()
    (source / "util_0.c").write_text("int util_0_0(int x) { return x; }\n")
    ninja(build, jobs=2)
    trace = json.loads((where / "configure.json").read_text())
    yield Measured(
        build, clean_log, read_ninja_log(build / ".ninja_log"), trace, source
    )
    shutil.rmtree(where, ignore_errors=True)


def clean_steps(measured: Measured) -> list[Step]:
    return steps(runs(measured.log)[0])


def test_log_starts_with_its_version_and_has_five_fields(measured: Measured) -> None:
    lines = measured.clean_log.splitlines()
    assert lines[0] == "# ninja log v5"
    assert all(len(line.split("\t")) == 5 for line in lines[1:])


def test_every_command_of_the_build_is_one_step(measured: Measured) -> None:
    commands = subprocess.run(
        ["ninja", "-C", str(measured.build), "-t", "commands"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    done = clean_steps(measured)
    assert len(done) == len(commands)
    outputs = {output for step in done for output in step.outputs}
    assert {"tables.c", "libtables.a", "app"} <= outputs


def reaches(
    inputs: Mapping[str, set[str]], start: str, goal: str, timed: set[str]
) -> bool:
    """``goal`` reads ``start``, directly or through files no step wrote."""
    todo, seen = [goal], set()
    while todo:
        node = todo.pop()
        for source in inputs.get(node, ()):
            if source == start:
                return True
            if source not in seen and source not in timed:
                seen.add(source)
                todo.append(source)
    return False


def test_critical_path_is_a_chain_in_the_graph(measured: Measured) -> None:
    done = clean_steps(measured)
    inputs = ninja_graph(measured.build)
    chain = critical_path(done, inputs)
    timed = {output for step in done for output in step.outputs}
    print([(step.outputs, step.duration_ms) for step in chain])
    for before, after in itertools.pairwise(chain):
        assert any(
            reaches(inputs, out, target, timed)
            for out in before.outputs
            for target in after.outputs
        ), (before, after)
    assert "tables.c" in chain[0].outputs  # the generator starts the chain
    assert chain[-1].outputs == ("app",)  # the link ends it
    assert any("tables.c.o" in output for output in chain[1].outputs)


def test_total_work_bounds(measured: Measured) -> None:
    result = profile(clean_steps(measured), ninja_graph(measured.build))
    print(f"total {result.total_ms} ms, critical path {result.critical_ms} ms")
    assert result.total_ms >= result.critical_ms
    assert result.lower_bound_ms(1) == result.total_ms
    assert result.lower_bound_ms(1000) == result.critical_ms
    assert bottleneck(result, 1).startswith("total work")
    assert bottleneck(result, 1000).startswith("critical path")


def test_a_cycle_is_reported_not_followed() -> None:
    step = Step(("a",), 0, 5)
    with pytest.raises(ValueError, match="cycle"):
        critical_path([step], {"a": {"b"}, "b": {"a"}})


def test_the_log_appends_one_build_after_another(measured: Measured) -> None:
    log = measured.log
    builds = runs(log)
    assert len(builds) == 2
    assert len(log) > len({entry.output for entry in log})  # summing lines counts twice
    again = sorted(output for step in steps(builds[-1]) for output in step.outputs)
    assert again == ["CMakeFiles/app.dir/util_0.c.o", "app"]


def test_a_file_that_is_not_a_ninja_log_is_refused(tmp_path: Path) -> None:
    (tmp_path / "log").write_text("# ninja log v4\n")
    with pytest.raises(ValueError, match="version 4"):
        read_ninja_log(tmp_path / "log")


@pytest.mark.parametrize(
    ("makefile", "remade"),
    [("stamp.mk", ["version.h", "main.o", "app"]), ("stamp_fixed.mk", ["version.h"])],
)
def test_trace_names_why_a_target_is_remade(
    tmp_path: Path, makefile: str, remade: list[str]
) -> None:
    need("make", "gcc")
    root = write_make_project(tmp_path, makefile)
    make(root)
    reasons = trace_reasons(make(root, "--trace"))
    print(reasons)
    assert [reason.target for reason in reasons] == remade
    assert reasons[0].newer == ("FORCE",)
    assert all(reason.rule.startswith("Makefile:") for reason in reasons)
    if makefile == "stamp.mk":
        assert reasons[1].newer == ("version.h",)


def test_trace_on_a_clean_build_lists_every_prerequisite(tmp_path: Path) -> None:
    need("make", "gcc")
    root = write_make_project(tmp_path, "stamp_fixed.mk")
    reasons = {
        reason.target: reason.newer for reason in trace_reasons(make(root, "--trace"))
    }
    # make 4.3: a missing target is "due to" all of its prerequisites
    assert reasons["main.o"] == ("main.c", "version.h")
    assert reasons["app"] == ("main.o", "util.o")


def test_debug_basic_names_the_newer_prerequisite(tmp_path: Path) -> None:
    need("make", "gcc")
    root = write_make_project(tmp_path, "stamp.mk")
    make(root)
    found = remake_reasons(make(root, "--debug=b").splitlines())
    assert ("main.o", "version.h") in found


def test_durations_and_junit_find_the_slow_fixture_and_test(tmp_path: Path) -> None:
    root = write_test_suite(tmp_path / "suite")
    report = tmp_path / "report.xml"
    output = run_pytest(
        root, "-q", "--durations=3", "--durations-min=0.25", f"--junitxml={report}"
    )
    phases = durations_report(output)
    assert [(p.when, p.test) for p in phases] == [
        ("call", "test_shop.py::test_report"),
        ("setup", "test_shop.py::test_insert"),
    ]
    assert "(1 durations < 0.25s hidden.)" in output
    slowest = [t.test for t in slowest_in_junit(report, 2)]
    assert slowest == ["test_shop::test_report", "test_shop::test_insert"]


def test_cmake_profile_has_an_event_per_command(measured: Measured) -> None:
    begins = [event for event in measured.trace if event["ph"] == "B"]
    ends = [event for event in measured.trace if event["ph"] == "E"]
    assert len(begins) == len(ends)  # CMake 3.25 writes begin/end pairs
    mine = str(measured.source / "CMakeLists.txt")
    ours = {
        event["name"]
        for event in begins
        if str(event["args"]["location"]).startswith(mine)  # type: ignore[index]
    }
    assert {"project", "add_custom_command", "add_library", "add_executable"} <= ours
