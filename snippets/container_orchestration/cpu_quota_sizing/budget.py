"""Combine the quota, the affinity mask and the override into pool sizes.

A fractional quota is rounded down, with a minimum of one.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .quota import CpuQuota, read_cpu_quota

__all__ = [
    "CpuBudget",
    "available_cpus",
    "cpu_budget",
    "cpu_count_override",
    "pool_sizes",
]

log = logging.getLogger(__name__)


# --8<-- [start:available]
def cpu_count_override() -> int | None:
    """`-X cpu_count=N` or `PYTHON_CPU_COUNT=N`, read the same way on 3.11+.

    Python 3.13 applies these to `os.cpu_count()` and `os.process_cpu_count()`;
    3.11 and 3.12 ignore them. Reading them here gives operators one knob on
    every version. `-X` wins over the environment, `default` means no
    override, and `-E`/`-I` make Python ignore the environment variable.
    """
    option = sys._xoptions.get("cpu_count")
    if isinstance(option, str):
        value: str | None = option
    elif sys.flags.ignore_environment:
        value = None
    else:
        value = os.environ.get("PYTHON_CPU_COUNT")
    if value is None or value == "default":
        return None
    count = int(value) if value.isdigit() else 0
    if count < 1:
        log.warning("ignoring the CPU count override %r", value)
        return None
    return count


def available_cpus() -> int:
    """CPUs this process may run on: the affinity mask (a cpuset shows here)."""
    count: int | None
    if sys.version_info >= (3, 13):
        count = os.process_cpu_count()  # affinity, or the -X/env override
    elif hasattr(os, "sched_getaffinity"):
        count = len(os.sched_getaffinity(0))
    else:
        count = os.cpu_count()  # macOS, Windows on 3.11/3.12
    return count or 1


# --8<-- [end:available]


# --8<-- [start:budget]
@dataclass(frozen=True)
class CpuBudget:
    """The three numbers that decide a pool size, and the decision.

    Attributes:
        host: `os.cpu_count()`: every CPU of the machine.
        available: The affinity mask: the CPUs this process may run on.
        quota: The tightest CFS quota, or None when there is no limit.
        override: `-X cpu_count` / `PYTHON_CPU_COUNT`, when set.
    """

    host: int | None
    available: int
    quota: CpuQuota | None
    override: int | None

    @property
    def cpus(self) -> int:
        """How many CPUs to size CPU-bound pools for."""
        if self.override is not None:
            return self.override  # the operator said so
        if self.quota is None:
            return self.available
        return min(self.available, self.quota.whole_cpus)

    def describe(self) -> str:
        """One log line with every input, so a wrong size is easy to explain."""
        quota = "none" if self.quota is None else f"{float(self.quota.cpus):g}"
        where = "" if self.quota is None else f" ({self.quota.source})"
        override = "" if self.override is None else f", override {self.override}"
        return (
            f"CPUs: host {self.host}, affinity {self.available}, "
            f"quota {quota}{where}{override} -> {self.cpus}"
        )


def cpu_budget(root: Path = Path("/"), available: int | None = None) -> CpuBudget:
    """Read the host count, the affinity mask, the quota and the override."""
    return CpuBudget(
        host=os.cpu_count(),
        available=available_cpus() if available is None else available,
        quota=read_cpu_quota(root),
        override=cpu_count_override(),
    )


# --8<-- [end:budget]


# --8<-- [start:pools]
def pool_sizes(budget: CpuBudget) -> tuple[int, int]:
    """(processes, threads) for a budget.

    Processes run Python in parallel: one per CPU of the budget. Threads mostly
    wait on I/O; the stdlib's own formula, `min(32, cpus + 4)`, is kept, but
    fed the budget instead of the host's count.
    """
    return budget.cpus, min(32, budget.cpus + 4)


# --8<-- [end:pools]
