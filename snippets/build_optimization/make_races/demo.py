"""The cases the make-races page shows.

    python -m snippets.build_optimization.make_races.demo header
    python -m snippets.build_optimization.make_races.demo outdir
    python -m snippets.build_optimization.make_races.demo depfiles
    python -m snippets.build_optimization.make_races.demo cmake

Every build is a clean one in a temporary directory, with the real make or
CMake and Ninja. The generator step (and the ``mkdir`` of the output
directory) is held by `snippets.support.build_optimization_gate` until the
build tool has nothing else to run: the slowest such a step could ever be.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from snippets.build_optimization.make_races import (
    Build,
    Runner,
    make_build,
    ninja_build,
    prepare_sources,
)
from snippets.support.build_optimization_gate import (
    hold_prefix,
    require_tool,
    run_gated,
)
from snippets.support.cases import run_cases

__all__: list[str] = []  # the cases a page shows; the API is the package


def gated(gate: Path) -> Runner:
    """A runner that holds the slow step until the tool waits only for it."""

    def run(command: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
        done = run_gated(command, cwd, gate)
        return subprocess.CompletedProcess(
            list(command), done.returncode, done.stdout, done.stderr
        )

    return run


@contextmanager
def workdir() -> Iterator[Path]:
    """A fresh directory with the page's sources and a gate to hold steps."""
    with tempfile.TemporaryDirectory() as scratch:
        where = prepare_sources(Path(scratch) / "project")
        os.mkfifo(where / ".gate")
        yield where


def report(build: Build) -> list[str]:
    status = "ok" if build.ok else f"FAILED (exit status {build.returncode})"
    return [f"$ {build.tool}: {status}", *(f"  {line}" for line in build.errors)]


def race(makefile: str) -> list[str]:
    """One Makefile, clean builds at -j1 and -j4, the slow step held."""
    require_tool("make")
    lines = []
    for jobs in (1, 4):
        with workdir() as where:
            gate = where / ".gate"
            slow = hold_prefix(gate)
            lines += report(make_build(where, makefile, jobs, slow, run=gated(gate)))
    return lines


def show_header() -> list[str]:
    """A generated header that no rule declares, then the fixed Makefile."""
    lines = [f"{'header_race.mk':-^60}", *race("header_race.mk")]
    return [*lines, f"{'fixed.mk':-^60}", *race("fixed.mk")]


def show_outdir() -> list[str]:
    """An output directory ordered only by the goal list."""
    return race("outdir_race.mk")


def edit_after_build(where: Path, name: str, old: str = "", new: str = "") -> None:
    """Edit a source after the build: every file ages a minute first.

    Without that, the edit could land in the same clock tick as the build's
    last output, and make would take the equal times for "up to date".
    """
    for path in [*where.iterdir(), *(where / "build").iterdir()]:
        stamp = path.stat().st_mtime - 60
        os.utime(path, (stamp, stamp), follow_symlinks=False)
    source = where / name
    text = source.read_text()
    source.write_text(text.replace(old, new) if old else text + "/* edited */\n")


def show_depfiles() -> list[str]:
    """Edit a header, then drop one: with -MMD -MP, -MMD alone, and none."""
    require_tool("make")
    lines = []
    for flags in ("-MMD -MP", ""):
        with workdir() as where:
            first = make_build(where, "fixed.mk", 4, variables=[f"DEPFLAGS={flags}"])
            assert first.ok, first.errors
            edit_after_build(where, "util.h")
            again = make_build(where, "fixed.mk", 4, variables=[f"DEPFLAGS={flags}"])
            rebuilt = ", ".join(sorted(again.outputs)) or "nothing"
            lines.append(f"DEPFLAGS={flags or '(none)'}: edit util.h -> {rebuilt}")
            lines += [f"  {line}" for line in again.errors]
    for flags in ("-MMD", "-MMD -MP"):
        with workdir() as where:
            make_build(where, "fixed.mk", 4, variables=[f"DEPFLAGS={flags}"])
            edit_after_build(where, "util.c", '#include "old.h"\n', "")
            (where / "old.h").unlink()
            again = make_build(where, "fixed.mk", 4, variables=[f"DEPFLAGS={flags}"])
            rebuilt = ", ".join(sorted(again.outputs)) or "nothing"
            lines.append(f"DEPFLAGS={flags}: delete old.h -> {rebuilt}")
            lines += [f"  {line}" for line in again.errors]
    return lines


def show_cmake() -> list[str]:
    """CMake + Ninja: a custom command's header, undeclared and declared."""
    for tool in ("cmake", "ninja", "gcc"):
        require_tool(tool)
    lines = []
    for fix, jobs in [
        ("none", 1),
        ("none", 4),
        ("sources", 4),
        ("add_dependencies", 4),
    ]:
        with workdir() as where:
            gate = where / ".gate"
            build = ninja_build(
                where, jobs, fix=fix, slow=hold_prefix(gate), run=gated(gate)
            )
            lines += report(build)
    return lines


if __name__ == "__main__":
    sys.exit(
        run_cases(
            {
                "header": show_header,
                "outdir": show_outdir,
                "depfiles": show_depfiles,
                "cmake": show_cmake,
            }
        )
    )
