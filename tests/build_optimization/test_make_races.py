"""Tests for snippets/build_optimization/make_races/.

Real GNU make, gcc, CMake and Ninja build the page's sources from clean, in
``tmp_path``. The generator step (and the ``mkdir`` of the output directory)
is held by a gate that opens only when make or Ninja sleeps with nothing but
held steps running: the slowest the step could be. So a missing prerequisite
fails every time under ``-j``, and a declared one never does; no sleep
decides the outcome.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from snippets.build_optimization.make_races import (
    Build,
    errors,
    make_build,
    ninja_build,
    prepare_sources,
)
from snippets.build_optimization.make_races.demo import edit_after_build, gated
from snippets.support.build_optimization_gate import hold_prefix, require_tool
from snippets.support.services import ServiceUnavailable
from tests.conftest import unavailable
from tools.errors import ErrorRecorder

MISSING_HEADER = "main.c:3:10: fatal error: gen.h: No such file or directory"


@pytest.fixture(autouse=True)
def tools() -> None:
    for tool in ("make", "gcc", "cmake", "ninja"):
        try:
            require_tool(tool)
        except ServiceUnavailable as error:
            unavailable(tool, str(error))


def held_make(where: Path, makefile: str, jobs: int) -> Build:
    gate = where / ".gate"
    if not gate.exists():
        os.mkfifo(gate)
    return make_build(where, makefile, jobs, hold_prefix(gate), run=gated(gate))


def held_ninja(where: Path, jobs: int, fix: str) -> Build:
    gate = where / ".gate"
    os.mkfifo(gate)
    return ninja_build(where, jobs, fix=fix, slow=hold_prefix(gate), run=gated(gate))


def tool_version(*command: str) -> str:
    """The version a tool reports (``gcc -dumpfullversion``, ``make --version``)."""
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0].removeprefix("GNU Make ")


@pytest.mark.parametrize("attempt", range(3))
def test_undeclared_generated_header_fails_every_time_under_j4(
    tmp_path: Path, attempt: int, error_record: ErrorRecorder
) -> None:
    build = held_make(prepare_sources(tmp_path), "header_race.mk", 4)
    print(build)
    assert build.returncode == 2
    assert MISSING_HEADER in build.errors
    assert "make: *** [Makefile:13: main.o] Error 1" in build.errors
    # What the build printed (the assertions above pin the exact lines).
    compiler, maker = (line for line in build.errors if "error" in line.lower())
    error_record(
        compiler,
        id="missing-header",
        component="GCC",
        version=tool_version("gcc", "-dumpfullversion"),
    )
    error_record(
        maker,
        id="make-error",
        component="GNU Make",
        version=tool_version("make", "--version"),
    )


def test_undeclared_generated_header_builds_under_j1(tmp_path: Path) -> None:
    build = held_make(prepare_sources(tmp_path), "header_race.mk", 1)
    assert build.ok, build.errors
    assert build.outputs == ("main.o", "util.o", "app")  # gen.h came first


@pytest.mark.parametrize("jobs", [1, 4, 8])
def test_fixed_makefile_builds_at_any_width(tmp_path: Path, jobs: int) -> None:
    build = held_make(prepare_sources(tmp_path), "fixed.mk", jobs)
    assert build.ok, build.errors
    assert sorted(build.outputs) == ["build/app", "build/main.o", "build/util.o"]
    assert (tmp_path / "build" / "gen.h").read_text().startswith("#define GREETING")


def test_output_directory_ordered_by_goal_list_races(tmp_path: Path) -> None:
    where = prepare_sources(tmp_path)
    broken = held_make(where, "outdir_race.mk", 4)
    assert broken.returncode == 2
    assert "Fatal error: can't create build/util.o: No such file or directory" in (
        broken.errors
    )
    serial = held_make(prepare_sources(tmp_path / "serial"), "outdir_race.mk", 1)
    assert serial.ok, serial.errors


def dep_build(where: Path, flags: str) -> Build:
    return make_build(where, "fixed.mk", 4, variables=[f"DEPFLAGS={flags}"])


@pytest.mark.parametrize(
    ("flags", "rebuilt"),
    [("-MMD -MP", ["build/app", "build/main.o", "build/util.o"]), ("", [])],
)
def test_header_edit_rebuilds_only_with_dependency_files(
    tmp_path: Path, flags: str, rebuilt: list[str]
) -> None:
    where = prepare_sources(tmp_path)
    assert dep_build(where, flags).ok
    assert (where / "build" / "main.d").exists() == bool(flags)
    edit_after_build(where, "util.h")
    again = dep_build(where, flags)
    assert sorted(again.outputs) == rebuilt
    if not rebuilt:
        assert again.errors == ("make: 'build/app' is up to date.",)


def test_deleted_header_needs_mp(tmp_path: Path) -> None:
    for flags, ok in [("-MMD", False), ("-MMD -MP", True)]:
        where = prepare_sources(tmp_path / flags.replace(" ", ""))
        assert dep_build(where, flags).ok
        edit_after_build(where, "util.c", '#include "old.h"\n', "")
        (where / "old.h").unlink()
        again = dep_build(where, flags)
        assert again.ok is ok
        if not ok:
            assert again.errors == (
                "make: *** No rule to make target 'old.h', needed by "
                "'build/util.o'.  Stop.",
            )
        else:
            assert "build/util.o" in again.outputs


@pytest.mark.parametrize("jobs", [1, 4])
def test_ninja_races_without_a_declared_header(tmp_path: Path, jobs: int) -> None:
    build = held_ninja(prepare_sources(tmp_path), jobs, "none")
    assert not build.ok
    assert "FAILED: CMakeFiles/app.dir/main.c.o" in build.errors
    assert MISSING_HEADER in build.errors


@pytest.mark.parametrize("fix", ["sources", "add_dependencies"])
@pytest.mark.parametrize("jobs", [1, 4])
def test_ninja_builds_once_the_header_is_declared(
    tmp_path: Path, fix: str, jobs: int
) -> None:
    build = held_ninja(prepare_sources(tmp_path), jobs, fix)
    assert build.ok, build.errors


def test_errors_keeps_searchable_lines_without_the_build_directory() -> None:
    log = (
        "gcc -c -o main.o main.c\n"
        "/tmp/x/main.c:3:10: fatal error: gen.h: No such file or directory\n"
        "compilation terminated.\n"
    )
    assert errors(log, Path("/tmp/x")) == (MISSING_HEADER,)
