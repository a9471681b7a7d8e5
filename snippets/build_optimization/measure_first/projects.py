"""The projects the page measures, written into a scratch directory.

A CMake project (``project/``) built with Ninja, a Makefile project with a
version header, and a tiny pytest suite with one slow fixture and one slow
test. The slow parts are slow by size (a large generated source) or by a
sleep in a test; the page and the tests read structure, not seconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__: list[str] = []  # the harness; the page's API is the package

HERE = Path(__file__).resolve().parent


def tool_env() -> dict[str, str]:
    """This environment without an outer make's flags, messages in English."""
    outer = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKE_TERMOUT", "MAKE_TERMERR")
    env = {k: v for k, v in os.environ.items() if k not in outer}
    env["LC_ALL"] = "C"
    return env


def run(command: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(command),
        cwd=cwd,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed:\n{result.stdout}{result.stderr}")
    return result


def write_c_project(root: Path, utils: int = 4, util_functions: int = 60) -> Path:
    """``project/`` plus main.c and ``utils`` small util_N.c files."""
    shutil.copytree(HERE / "project", root)
    calls = []
    for n in range(utils):
        body = [
            f"int util_{n}_{i}(int x) {{ return x + {i}; }}"
            for i in range(util_functions)
        ]
        (root / f"util_{n}.c").write_text("\n".join(body) + "\n")
        calls.append(f"util_{n}_0(argc)")
    main = [
        "int table_sum(int x);",
        *(f"int util_{n}_0(int x);" for n in range(utils)),
        "int main(int argc, char **argv) {",
        "  (void)argv;",
        f"  return (table_sum(argc) + {' + '.join(calls) or '0'}) & 1;",
        "}",
    ]
    (root / "main.c").write_text("\n".join(main) + "\n")
    return root


def cmake_configure(source: Path, build: Path, trace: Path | None = None) -> None:
    """Configure with the Ninja generator; ``trace``: CMake's own profile."""
    command = ["cmake", "-G", "Ninja", "-S", str(source), "-B", str(build)]
    command += ["-DCMAKE_BUILD_TYPE=Release", f"-DPYTHON={sys.executable}"]
    if trace is not None:
        command += ["--profiling-format=google-trace", f"--profiling-output={trace}"]
    run(command, source)


def ninja(build: Path, jobs: int = 2) -> None:
    run(["ninja", "-C", str(build), f"-j{jobs}"], build)


def write_make_project(root: Path, makefile: str) -> Path:
    """main.c (which includes version.h), util.c and ``makefile`` as Makefile."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy2(HERE / makefile, root / "Makefile")
    (root / "main.c").write_text(
        '#include "version.h"\nconst char *version(void) { return VERSION; }\n'
        "int util(void);\nint main(void) { return util(); }\n"
    )
    (root / "util.c").write_text("int util(void) { return 0; }\n")
    return root


def make(root: Path, *args: str) -> str:
    """``make ARGS`` in ``root``: its standard output."""
    return run(["make", *args], root).stdout


SUITE = """\
import time

import pytest


@pytest.fixture(scope="module")
def database():
    time.sleep(0.6)  # a slow setup, paid by the first test that asks
    return {}


def test_insert(database):
    database["a"] = 1


def test_report():
    time.sleep(1.2)  # a slow test body


def test_fast():
    assert True


def test_also_fast():
    assert True
"""


def write_test_suite(root: Path) -> Path:
    """A pytest suite with one slow fixture and one slow test."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "test_shop.py").write_text(SUITE)
    return root


def run_pytest(root: Path, *args: str) -> str:
    """pytest in ``root`` with this interpreter; its standard output."""
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    result = subprocess.run(
        command, cwd=root, env=tool_env(), capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise RuntimeError(f"pytest failed:\n{result.stdout}{result.stderr}")
    return result.stdout
