"""The cases the compiler-cache page shows.

    python -m snippets.build_optimization.compiler_cache.demo rebuild
    python -m snippets.build_optimization.compiler_cache.demo checkouts
    python -m snippets.build_optimization.compiler_cache.demo debuginfo
    python -m snippets.build_optimization.compiler_cache.demo config

Every case uses a private, empty ``CCACHE_DIR`` and the real ccache, gcc,
setuptools, CMake and Ninja installed here. The counters come from
``ccache --print-stats``, zeroed before each build.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from snippets.build_optimization.compiler_cache import (
    Stats,
    ccache_env,
    cmake_build,
    config_value,
    setuptools_build,
    stats,
    zero_stats,
)
from snippets.build_optimization.parallel_c_extensions import write_project
from snippets.support.build_optimization_cc import setuptools_python
from snippets.support.build_optimization_gate import require_tool
from snippets.support.cases import run_cases

__all__: list[str] = []  # the cases a page shows; the API is the package

Build = Callable[[Path, Mapping[str, str]], None]


def tools() -> dict[str, Build]:
    """The two builds, each a function of (project, ccache environment)."""
    for tool in ("ccache", "gcc", "cmake", "ninja"):
        require_tool(tool)
    python = setuptools_python()

    def setuptools(project: Path, cache: Mapping[str, str]) -> None:
        setuptools_build(project, python, cache)

    return {"setuptools build_ext": setuptools, "cmake + ninja": cmake_build}


def counted(build: Build, project: Path, cache: Mapping[str, str]) -> Stats:
    zero_stats(cache)
    build(project, cache)
    return stats(cache)


def row(label: str, counts: Stats) -> str:
    return f"  {label:<28} {counts.misses:>2} misses, {counts.hits:>2} hits"


def show_rebuild() -> list[str]:
    """Cold cache, then a clean rebuild (build directory removed)."""
    lines = []
    for name, build in tools().items():
        with tempfile.TemporaryDirectory() as scratch:
            where = Path(scratch)
            project = write_project(where / "pkg", extensions=4, files=1, weight=1)
            cache = ccache_env(where / "ccache")
            lines.append(name)
            cold = counted(build, project.root, cache)
            warm = counted(build, project.root, cache)
            lines += [row("cold cache", cold), row("rm -rf build, build again", warm)]
    return lines


def second_checkout(
    name: str, variants: list[tuple[bool, bool, str]], extensions: int
) -> list[str]:
    """Build one checkout, then an identical one beside it: count the second."""
    build = tools()[name]
    lines = [name]
    for base, hash_dir, label in variants:
        with tempfile.TemporaryDirectory() as scratch:
            where = Path(scratch)
            first = write_project(where / "ci-1" / "pkg", extensions, 1, weight=1)
            second = write_project(where / "ci-2" / "pkg", extensions, 1, weight=1)
            cache = ccache_env(where / "ccache", where if base else None, hash_dir)
            counted(build, first.root, cache)
            lines.append(row(label, counted(build, second.root, cache)))
    return lines


def show_checkouts() -> list[str]:
    """CMake (absolute source paths): without and with CCACHE_BASEDIR."""
    variants = [(False, True, "second checkout"), (True, True, "  with base_dir")]
    return second_checkout("cmake + ninja", variants, extensions=4)


def show_debuginfo() -> list[str]:
    """setuptools (Python's CFLAGS have -g): base_dir is not enough."""
    variants = [
        (False, True, "second checkout"),
        (True, True, "  with base_dir"),
        (True, False, "  and hash_dir = false"),
    ]
    return second_checkout("setuptools build_ext", variants, extensions=2)


def show_config() -> list[str]:
    """The installed ccache's version and the defaults the page relies on."""
    require_tool("ccache")
    version = subprocess.run(
        ["ccache", "--version"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[0]
    with tempfile.TemporaryDirectory() as scratch:
        cache = ccache_env(Path(scratch))
        keys = ("compiler_check", "base_dir", "hash_dir", "max_size")
        values = {key: config_value(key, cache) or "(empty)" for key in keys}
        return [version, *(f"{key} = {value}" for key, value in values.items())]


if __name__ == "__main__":
    cases = {"rebuild": show_rebuild, "checkouts": show_checkouts}
    cases |= {"debuginfo": show_debuginfo, "config": show_config}
    sys.exit(run_cases(cases))
