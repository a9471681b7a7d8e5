"""The cases the CPU-quota-sizing page shows.

    python -m snippets.container_orchestration.cpu_quota_sizing.demo CASE

`defaults` and `sizes` run on cgroup layouts built as plain files in a
temporary directory, with an affinity of 64 CPUs; `docker` runs a real
container with `docker run --cpus=1` (snippets/support/docker_engine.py).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from snippets.container_orchestration.cpu_quota_sizing import (
    CpuBudget,
    cpu_budget,
    pool_sizes,
)
from snippets.support.cases import run_cases
from snippets.support.container_orchestration_cgroups import HOST_CPUS, TREES, Tree
from snippets.support.container_orchestration_cpu_docker import inside_container


def stdlib_default_sizes() -> tuple[int, int]:
    """(processes, threads) that ProcessPoolExecutor() and ThreadPoolExecutor() pick."""
    with ProcessPoolExecutor() as processes, ThreadPoolExecutor() as threads:
        # Private, but the only place the chosen default is visible.
        return int(vars(processes)["_max_workers"]), threads._max_workers


@contextmanager
def host_with(cpus: int) -> Iterator[None]:
    """Make the count the stdlib pools read return `cpus` (the quota is unread)."""
    name = "process_cpu_count" if sys.version_info >= (3, 13) else "cpu_count"
    with mock.patch.object(os, name, lambda: cpus):
        yield


def budget(tree: Tree, base: Path) -> CpuBudget:
    """The budget on `tree`, with an affinity of `HOST_CPUS`."""
    return cpu_budget(tree.build(base), available=HOST_CPUS)


def show_defaults() -> list[str]:
    tree = TREES[0]  # cpu.max 200000 100000
    with host_with(HOST_CPUS), tempfile.TemporaryDirectory() as base:
        naive_processes, naive_threads = stdlib_default_sizes()
        processes, threads = pool_sizes(budget(tree, Path(base)))
    return [
        f"host: {HOST_CPUS} CPUs; {tree.shown} (2 CPUs)",
        f"ProcessPoolExecutor()  {naive_processes} processes",
        f"ThreadPoolExecutor()   {naive_threads} threads",
        f"quota-aware            {processes} processes, {threads} threads",
    ]


def show_sizes() -> list[str]:
    lines = [
        f"affinity: {HOST_CPUS} CPUs",
        f"{'cgroup':<22}{'limit':<24}{'CPUs':>5}{'processes':>11}{'threads':>9}",
    ]
    with tempfile.TemporaryDirectory() as base:
        for tree in TREES:
            result = budget(tree, Path(base))
            cpus = "-" if result.quota is None else f"{float(result.quota.cpus):g}"
            processes, threads = pool_sizes(result)
            lines.append(
                f"{tree.label:<22}{tree.shown:<24}{cpus:>5}{processes:>11}{threads:>9}"
            )
    return lines


def share(pool: dict[str, Any]) -> str:
    """Throttled time as a share of the run's wall time, in buckets."""
    ratio = pool["throttled_ms"] / 1000 / pool["wall"]
    if ratio < 0.1:
        return "under 10 %"
    return "over 40 %" if ratio > 0.4 else "10-40 %"


def show_docker() -> list[str]:
    old, new = inside_container("1"), inside_container("1", python="3.13", tasks=0)
    host = os.cpu_count()

    def count(value: object) -> str:
        return "the host's count" if value == host else str(value)

    v1 = old["quota_file"].endswith("cpu.cfs_quota_us")
    lines = [
        f"docker run --cpus=1, cgroup {'v1' if v1 else 'v2'}",
        f"os.cpu_count()          3.11: {count(old['cpu_count'])}, "
        f"3.13: {count(new['cpu_count'])}",
        f"os.process_cpu_count()  3.13: {count(new['process_cpu_count'])}",
        f"read_cpu_quota()        {old['quota_cpus']:g} CPU from {old['quota_file']}",
        f"pool_sizes()            {old['budget_cpus']} process",
        "",
        f"{'8 CPU-bound tasks on':<26}{'workers':<18}throttled (cpu.stat)",
    ]
    for label, pool in (
        ("ProcessPoolExecutor()", old["oversized"]),
        ("quota-aware pool", old["right_sized"]),
    ):
        workers = count(pool["workers"])
        lines.append(f"{label:<26}{workers:<18}{share(pool)} of the time")
    return lines


if __name__ == "__main__":
    sys.exit(
        run_cases(
            {"defaults": show_defaults, "sizes": show_sizes, "docker": show_docker}
        )
    )
