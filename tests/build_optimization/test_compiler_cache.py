"""Tests for snippets/build_optimization/compiler_cache/.

The real ccache wraps gcc for a setuptools ``build_ext`` and for a CMake +
Ninja build, each with a private ``CCACHE_DIR`` in ``tmp_path``. The counters
come from ``ccache --print-stats``; wall times are printed, not asserted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

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
from snippets.support.services import ServiceUnavailable
from tests.conftest import unavailable

Build = Callable[[Path, Mapping[str, str]], None]


@pytest.fixture(autouse=True)
def tools() -> None:
    for tool in ("ccache", "gcc", "cmake", "ninja"):
        try:
            require_tool(tool)
        except ServiceUnavailable as error:
            unavailable(tool, str(error))


def setuptools(project: Path, cache: Mapping[str, str]) -> None:
    setuptools_build(project, setuptools_python(), cache)


BUILDS: dict[str, tuple[Build, int]] = {  # the build, compiles per full build
    "setuptools": (setuptools, 8),
    "cmake": (cmake_build, 4),
}


def counted(build: Build, project: Path, cache: Mapping[str, str]) -> Stats:
    zero_stats(cache)
    started = time.monotonic()
    build(project, cache)
    print(f"  {time.monotonic() - started:.2f} s")
    return stats(cache)


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_clean_rebuild_hits_every_compile(tmp_path: Path, name: str) -> None:
    build, compiles = BUILDS[name]
    project = write_project(tmp_path / "pkg", extensions=4, files=1, weight=3)
    cache = ccache_env(tmp_path / "ccache")
    cold = counted(build, project.root, cache)
    warm = counted(build, project.root, cache)
    print(name, cold, warm)
    assert (cold.misses, cold.hits) == (compiles, 0)
    assert (warm.misses, warm.hits) == (0, compiles)
    assert warm.direct_hits == compiles  # no preprocessor run at all


def test_setuptools_links_go_through_ccache_uncached(tmp_path: Path) -> None:
    project = write_project(tmp_path / "pkg", extensions=4, files=1, weight=1)
    cache = ccache_env(tmp_path / "ccache")
    assert counted(setuptools, project.root, cache).links == 4  # one per extension


@pytest.mark.parametrize(
    ("name", "base", "hash_dir", "hits"),
    [
        ("cmake", False, True, 0),
        ("cmake", True, True, 4),
        ("setuptools", False, True, 0),
        ("setuptools", True, True, 0),  # Python's CFLAGS has -g: CWD is hashed
        ("setuptools", True, False, 8),
    ],
)
def test_second_checkout_hits_only_with_base_dir(
    tmp_path: Path, name: str, base: bool, hash_dir: bool, hits: int
) -> None:
    build, compiles = BUILDS[name]
    first = write_project(tmp_path / "ci-1" / "pkg", 4, 1, weight=1)
    second = write_project(tmp_path / "ci-2" / "pkg", 4, 1, weight=1)
    cache = ccache_env(tmp_path / "ccache", tmp_path if base else None, hash_dir)
    counted(build, first.root, cache)
    again = counted(build, second.root, cache)
    assert (again.hits, again.misses) == (hits, compiles - hits)


def test_compiler_check_default_is_mtime(tmp_path: Path) -> None:
    cache = ccache_env(tmp_path)
    assert config_value("compiler_check", cache) == "mtime"
    assert config_value("hash_dir", cache) == "true"
    assert config_value("base_dir", cache) == ""


def test_environment_wins_over_ccache_conf(tmp_path: Path) -> None:
    (tmp_path / "ccache.conf").write_text("base_dir = /elsewhere\n")
    cache = ccache_env(tmp_path, base_dir=tmp_path / "src")
    assert config_value("base_dir", cache) == str(tmp_path / "src")
