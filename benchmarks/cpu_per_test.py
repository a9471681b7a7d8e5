"""Where the test suite's CPU goes: per test, the CPU time of the test process
and every process it started.

Loaded as a pytest plugin, it writes one line per test to
``.reports/cpu/<worker>.jsonl``: the test's id, its unit (``xdist_scope``),
its wall time and its CPU time (setup, call and teardown together). Run as a
module, it sums those files by area and writes the table to
benchmarks/results.md ("Where the CPU goes").

    python -m pytest -p benchmarks.cpu_per_test ...   # or PYTEST_ARGS=... make pytest
    python -m benchmarks.cpu_per_test [REPORTS_DIR]

Each test process moves itself into a control group of its own (cgroup v1's
``cpuacct`` hierarchy, or cgroup v2) inside its current one, so that every
process it starts is counted, whether it was reaped, detached or still
running; a container started by the Docker daemon is not, nor are the servers
(RabbitMQ, PostgreSQL...). A session-scoped fixture's process (Chromium) counts towards
whichever test is running, so the sums by unit are the numbers to read, not
single tests.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.bench import write_section

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results.md"
BEGIN = "<!-- cpu-per-test: written by `python -m benchmarks.cpu_per_test` -->"
END = "<!-- /cpu-per-test -->"


V1 = Path("/sys/fs/cgroup/cpuacct")
V2 = Path("/sys/fs/cgroup/cgroup.controllers")


def own_cgroup(name: str) -> Path:
    """A new control group, inside this process's, holding this process; returns
    its CPU usage file (a parent's usage includes its groups')."""
    groups = dict(
        line.split(":", 2)[1:] for line in Path("/proc/self/cgroup").read_text().split()
    )
    if V1.is_dir():  # cgroup v1: the cpuacct hierarchy, in nanoseconds
        group, usage = V1 / groups["cpuacct"].lstrip("/") / name, "cpuacct.usage"
    elif V2.is_file():  # cgroup v2: the usage_usec line of cpu.stat
        group, usage = V2.parent / groups[""].lstrip("/") / name, "cpu.stat"
    else:
        raise pytest.UsageError("cpu_per_test needs cgroups mounted at /sys/fs/cgroup")
    group.mkdir(exist_ok=True)
    (group / "cgroup.procs").write_text(str(os.getpid()))
    return group / usage


def cpu_seconds(usage: Path) -> float:
    text = usage.read_text()
    if usage.name == "cpuacct.usage":
        return int(text) / 1e9
    return int(text.split("usage_usec")[1].split()[0]) / 1e6


class CpuPerTest:
    def __init__(self, config: pytest.Config) -> None:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        self.usage = own_cgroup(f"cpu-per-test-{worker}")
        folder = ROOT / ".reports" / "cpu"
        folder.mkdir(parents=True, exist_ok=True)
        self.out = (folder / f"{worker}.jsonl").open("w")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Iterator[None]:
        from tests.conftest import xdist_scope

        before, started = cpu_seconds(self.usage), time.monotonic()
        yield
        cpu = cpu_seconds(self.usage) - before
        wall = time.monotonic() - started
        line = {"id": item.nodeid, "unit": xdist_scope(item.nodeid)}
        self.out.write(json.dumps(line | {"wall": wall, "cpu": cpu}) + "\n")
        self.out.flush()


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(CpuPerTest(config), "cpu-per-test")


def area(unit: str) -> str:
    """The site module (a part of the site's visit counts as "pages") or topic."""
    if unit.startswith("tests/site/pages:"):
        return "site: every page (browser, accessibility, desktop diagrams)"
    if unit.startswith("tests/site/"):
        return "site: " + unit.split("/")[2].split(".py")[0]
    if "/" in unit and not unit.startswith("tests/"):
        return "patterns: " + unit.split("/")[0]
    return "other tests"


def main(argv: list[str]) -> int:
    folder = Path(argv[0]) if argv else ROOT / ".reports" / "cpu"
    rows = [
        json.loads(line)
        for path in sorted(folder.glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    if not rows:
        print(f"no CPU records in {folder}: run pytest -p benchmarks.cpu_per_test")
        return 1
    cpu: dict[str, float] = defaultdict(float)
    wall: dict[str, float] = defaultdict(float)
    tests: dict[str, int] = defaultdict(int)
    for row in rows:
        cpu[area(row["unit"])] += row["cpu"]
        wall[area(row["unit"])] += row["wall"]
        tests[area(row["unit"])] += 1
    total = sum(cpu.values())
    today = datetime.date.today().isoformat()
    lines = [
        BEGIN,
        "## Where the CPU goes",
        "",
        f"One run of the tests with `-p benchmarks.cpu_per_test` ({today}, 2 cores,"
        f" {len(rows)} tests): the CPU time of each test process and every process"
        " it started (Chromium, Node.js, compilers, demos), counted by a control"
        f" group; {total:.0f} s in all. Worker-seconds add up across parallel"
        " workers.",
        "",
        "| Area | Tests | CPU seconds | Share | Test seconds |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, seconds in sorted(cpu.items(), key=lambda item: -item[1]):
        lines.append(
            f"| {name} | {tests[name]} | {seconds:.0f} | {seconds / total:.0%}"
            f" | {wall[name]:.0f} |"
        )
    write_section(RESULTS, "\n".join([*lines, "", END]))
    print(f"wrote the CPU section of {RESULTS.relative_to(ROOT)}: {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
