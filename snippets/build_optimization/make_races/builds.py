"""Run a clean build with real make or CMake + Ninja, and keep what it says.

`make_build` copies the page's sources and one of its Makefiles into a
directory and runs ``make -jN`` there; `ninja_build` configures the page's
CMakeLists.txt with the Ninja generator and runs ``ninja -jN``. ``slow`` is a
command prefix for the generator step (the tests hold the step until the
build has nothing else to run, so a race always shows). `errors` keeps the
lines a reader would paste into a search box.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "HERE",
    "Build",
    "Runner",
    "errors",
    "make_build",
    "ninja_build",
    "outputs",
    "plain_runner",
    "prepare_sources",
]

HERE = Path(__file__).resolve().parent

Runner = Callable[[Sequence[str], Path], subprocess.CompletedProcess[str]]


def plain_runner(command: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a build tool and capture its output (no step is held)."""
    env = {**os.environ, "LC_ALL": "C"}  # messages as the page quotes them
    for name in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
        env.pop(name, None)  # not a sub-make of whatever runs this
    return subprocess.run(
        list(command), cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@dataclass(frozen=True)
class Build:
    """What a build printed: the exit status and the lines worth searching."""

    tool: str
    returncode: int
    errors: tuple[str, ...]
    outputs: tuple[str, ...] = ()  # what the compiler and linker wrote (-o)

    @property
    def ok(self) -> bool:
        return self.returncode == 0


# --8<-- [start:errors]
ERROR_LINE = re.compile(
    r"fatal error|Fatal error|No rule to make target|\*\*\* \[|^FAILED: "
    r"|is up to date|Nothing to be done"
)
OUTPUT = re.compile(r"^gcc .*-o (\S+)")


def errors(output: str, workdir: Path) -> tuple[str, ...]:
    """The error lines of a build log, with the build directory cut out."""
    found = []
    for line in output.splitlines():
        if ERROR_LINE.search(line):
            found.append(line.replace(f"{workdir}/", "").strip())
    return tuple(found)


# --8<-- [end:errors]


def outputs(stdout: str) -> tuple[str, ...]:
    """The files the build compiled or linked, in the order make echoed them."""
    return tuple(m.group(1) for m in map(OUTPUT.match, stdout.splitlines()) if m)


def prepare_sources(workdir: Path) -> Path:
    """Copy the page's C sources (main.c, util.c, headers) into ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    for source in (HERE / "src").iterdir():
        shutil.copy(source, workdir / source.name)  # modified now, as if edited
    return workdir


def make_build(
    workdir: Path,
    makefile: str,
    jobs: int,
    slow: Sequence[str] = (),
    *,
    run: Runner = plain_runner,
    variables: Sequence[str] = (),
) -> Build:
    """``make -jN`` with one of the page's Makefiles as ``workdir/Makefile``."""
    shutil.copy2(HERE / makefile, workdir / "Makefile")
    command = ["make", f"-j{jobs}", *variables]
    if slow:
        command.append("SLOW=" + " ".join(slow))
    result = run(command, workdir)
    return Build(
        f"make -j{jobs}",
        result.returncode,
        errors(result.stdout + result.stderr, workdir),
        outputs(result.stdout),
    )


def ninja_build(
    workdir: Path,
    jobs: int,
    *,
    fix: str = "none",
    slow: Sequence[str] = (),
    run: Runner = plain_runner,
) -> Build:
    """Configure the page's CMakeLists.txt for Ninja, then ``ninja -jN``.

    ``fix`` is ``none``, ``sources`` (the header is one of app's sources) or
    ``add_dependencies`` (app depends on the target that generates it).
    """
    build = workdir / "build"
    configure = [
        "cmake",
        "-G",
        "Ninja",
        "-S",
        str(workdir),
        "-B",
        str(build),
        f"-DFIX={fix}",
        "-DSLOW=" + ";".join(slow),
    ]
    done = plain_runner(configure, workdir)
    if done.returncode != 0:
        raise RuntimeError(f"cmake failed:\n{done.stdout}{done.stderr}")
    result = run(["ninja", f"-j{jobs}"], build)
    return Build(
        f"ninja -j{jobs} (FIX={fix})",
        result.returncode,
        errors(result.stdout + result.stderr, workdir),
    )
