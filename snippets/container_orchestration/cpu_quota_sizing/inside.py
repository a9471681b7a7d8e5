"""What a process inside `docker run --cpus=N` sees, and what its pools cost.

    python -m snippets.container_orchestration.cpu_quota_sizing.inside

Run inside the container, it prints one JSON object: the CPU counts Python
reports, the budget the guide's reader computes, and the container's CFS
statistics (`cpu.stat`) before and after the same CPU-bound work runs on an
oversized pool (the stdlib default size) and on a right-sized one.
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from .budget import cpu_budget, pool_sizes
from .quota import cpu_cgroup_dir

__all__ = ["burn", "cpu_stat", "report", "throttling"]


# --8<-- [start:stat]
def cpu_stat() -> dict[str, int]:
    """The container's CFS statistics: `cpu.stat` in its cgroup directory.

    cgroup v1 (`Documentation/scheduler/sched-bwc.rst`): `nr_periods`,
    `nr_throttled`, `throttled_time` (ns). cgroup v2
    (`Documentation/admin-guide/cgroup-v2.rst`): `nr_periods`, `nr_throttled`,
    `throttled_usec` (µs), next to `usage_usec`.
    """
    found = cpu_cgroup_dir()
    if found is None:
        return {}
    directory = found[0]
    pairs = (line.split() for line in (directory / "cpu.stat").read_text().splitlines())
    return {name: int(value) for name, value in pairs}


def throttling(before: dict[str, int], after: dict[str, int]) -> dict[str, float]:
    """Periods, throttled periods and throttled milliseconds between two reads."""
    delta = {name: after[name] - before.get(name, 0) for name in after}
    if "throttled_usec" in delta:  # cgroup v2
        throttled_ms = delta["throttled_usec"] / 1000
    else:  # cgroup v1
        throttled_ms = delta.get("throttled_time", 0) / 1e6
    return {
        "periods": delta.get("nr_periods", 0),
        "throttled": delta.get("nr_throttled", 0),
        "throttled_ms": throttled_ms,
    }


# --8<-- [end:stat]


def burn(loops: int) -> int:
    """CPU-bound work: the same number of loops whatever the pool."""
    total = 0
    for number in range(loops):
        total += number % 7
    return total


def run_pool(workers: int, tasks: int, loops: int) -> dict[str, float]:
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(burn, [0] * workers))  # start every worker first
        before = cpu_stat()
        started = time.monotonic()
        list(pool.map(burn, [loops] * tasks))
        wall = time.monotonic() - started
        after = cpu_stat()
    return {"workers": workers, "wall": wall, **throttling(before, after)}


def report(tasks: int = 8, loops: int = 5_000_000) -> dict[str, object]:
    budget = cpu_budget()
    processes, _ = pool_sizes(budget)
    with ProcessPoolExecutor() as default:
        oversized = int(vars(default)["_max_workers"])
    process_cpu_count = getattr(os, "process_cpu_count", None)
    return {
        "python": "{}.{}".format(*sys.version_info[:2]),
        "cpu_count": os.cpu_count(),
        "process_cpu_count": process_cpu_count() if process_cpu_count else None,
        "quota_cpus": None if budget.quota is None else float(budget.quota.cpus),
        "quota_file": None if budget.quota is None else str(budget.quota.source),
        "budget_cpus": budget.cpus,
        "oversized": run_pool(oversized, tasks, loops) if tasks else None,
        "right_sized": run_pool(processes, tasks, loops) if tasks else None,
    }


if __name__ == "__main__":
    tasks = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    print(json.dumps(report(tasks)))
