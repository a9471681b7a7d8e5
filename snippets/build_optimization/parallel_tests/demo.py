"""The cases the parallel-tests page shows.

    python -m snippets.build_optimization.parallel_tests.demo break
    python -m snippets.build_optimization.parallel_tests.demo groups
    python -m snippets.build_optimization.parallel_tests.demo auto

Each case writes small suites (suites/) to a temporary folder and runs the
real pytest and pytest-xdist on them in subprocesses. Every number printed is
a count: outcomes, setups, workers.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import tempfile
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

from snippets.build_optimization.parallel_tests import auto_workers
from snippets.support.build_optimization_xdist import (
    Run,
    run_pytest,
    two_cpus,
    versions,
    write_suite,
)
from snippets.support.cases import run_cases
from snippets.support.container_orchestration_cgroups import PROC, V2, Tree

__all__: list[str] = []  # the cases a page shows; the API is the package

T = TypeVar("T")
TESTS = ("test_report_round_trip", "test_server_port", "test_database")
TWIN = {"test_one.py": "", "test_two.py": ""}
PARALLEL = ("-n", "2", "--dist", "loadfile")  # one copy of the module per worker
PLUGIN = "snippets.build_optimization.parallel_tests.plugin"
ONE_CPU_QUOTA = Tree(
    "v2, limit 1",
    "0::/\n",
    [PROC, V2],
    {"sys/fs/cgroup/cpu.max": "100000 100000\n"},
    Fraction(1),
)


def in_scratch(body: Callable[[Path], T]) -> T:
    with tempfile.TemporaryDirectory() as scratch:
        return body(Path(scratch))


def twins(where: Path, module: str) -> Path:
    return write_suite(where, dict.fromkeys(TWIN, module))


def break_runs(scratch: Path) -> dict[str, Run]:
    """The shared-resource suite serially and under -n 2; the fixed one."""
    shared, isolated = twins(scratch / "a", "shared"), twins(scratch / "b", "isolated")
    return {
        "serial": run_pytest(shared),
        "-n 2": run_pytest(shared, *PARALLEL),
        "-n 2, fixed": run_pytest(isolated, *PARALLEL),
    }


def summary(run: Run, test: str) -> str:
    counts = [(run.count(test, o), o) for o in ("failed", "passed", "error")]
    return ", ".join(f"{n} {o}" for n, o in counts if n)


def shown(message: str) -> str:
    """A failure's first line, with the copy names and the port made generic."""
    first = message.splitlines()[0]
    first = re.sub(
        r"'test_(one|two)' == 'test_(one|two)'", "'<other>' == '<me>'", first
    )
    return re.sub(r"\d{4,5}\)\)$", "<port>))", first)


def show_break() -> list[str]:
    runs = in_scratch(break_runs)
    lines = [f"{versions()}; test_one.py and test_two.py are one module twice"]
    lines.append(f"{'':<24}" + "".join(f"{label:<20}" for label in runs).rstrip())
    for test in TESTS:
        cells = "".join(f"{summary(run, test):<20}" for run in runs.values())
        lines.append(f"{test:<24}{cells}".rstrip())
    setups = "".join(f"{run.setups:<20}" for run in runs.values())
    lines.append(f"{'session setups':<24}{setups}".rstrip())
    lines.append("failures under -n 2:")
    failed = runs["-n 2"].messages
    lines += sorted(
        f"  {node.split('::')[1]}: {shown(m)}" for node, m in failed.items()
    )
    return lines


def group_runs(scratch: Path) -> dict[str, Run]:
    """Two tests marked xdist_group("db"), under loadgroup and loadfile."""
    runs = {}
    for mode in ("loadgroup", "loadfile"):
        suite = write_suite(scratch / mode, {"test_db.py": "grouped"})
        runs[mode] = run_pytest(suite, "-n", "2", "--dist", mode)
    return runs


def show_groups() -> list[str]:
    runs = in_scratch(group_runs)
    lines = [f'{versions()}; two tests marked xdist_group("db"), -n 2']
    for mode, run in runs.items():
        suffixed = sum("@" in node for node in run.outcomes)
        lines.append(
            f"  --dist {mode:<10} passed {run.count('test_migrate', 'passed')}"
            f"+{run.count('test_rollback', 'passed')}, "
            f"node ids with @db: {suffixed}, workers used: {len(run.ran_on)}"
        )
    return lines


AUTO: list[tuple[str, tuple[str, ...], str, dict[str, str]]] = [
    ("-n auto", (), "two", {}),
    ("-n auto, affinity 1 CPU", (), "one", {}),
    ("-n logical", ("-n", "logical"), "two", {}),
    (
        "PYTEST_XDIST_AUTO_NUM_WORKERS=3",
        (),
        "two",
        {"PYTEST_XDIST_AUTO_NUM_WORKERS": "3"},
    ),
    ("PYTHON_CPU_COUNT=1", (), "two", {"PYTHON_CPU_COUNT": "1"}),
    (
        "quota plugin, PYTHON_CPU_COUNT=1",
        ("-p", PLUGIN),
        "two",
        {"PYTHON_CPU_COUNT": "1"},
    ),
]


def auto_counts(scratch: Path, only: set[str] | None = None) -> dict[str, int | None]:
    """The workers pytest-xdist would start (``--collect-only`` runs none)."""
    suite = write_suite(scratch / "auto", {})
    two = two_cpus()
    counts = {}
    for label, extra, cpus, env in AUTO:
        if only is not None and label not in only:
            continue
        args = ["--collect-only", *extra]
        if "-n" not in extra:
            args += ["-n", "auto"]
        pinned = two if cpus == "two" else {min(two)}
        counts[label] = run_pytest(suite, *args, cpus=pinned, env=env).workers()
    return counts


def quota_workers(scratch: Path) -> int:
    """``auto_workers`` on a tree of files with a 1-CPU quota (cpu.max)."""
    return auto_workers(ONE_CPU_QUOTA.build(scratch))


def show_auto() -> list[str]:
    psutil = "installed" if importlib.util.find_spec("psutil") else "not installed"
    lines = [f"{versions()}, psutil {psutil}; on 2 CPUs unless said"]
    for label, count in in_scratch(auto_counts).items():
        lines.append(f"  {label:<36} {count} worker{'' if count == 1 else 's'}")
    lines.append("cgroup v2 cpu.max 100000 100000 (1 CPU), on 2 CPUs:")
    lines.append(f"  auto_workers()                       {in_scratch(quota_workers)}")
    return lines


if __name__ == "__main__":
    sys.exit(run_cases({"break": show_break, "groups": show_groups, "auto": show_auto}))
