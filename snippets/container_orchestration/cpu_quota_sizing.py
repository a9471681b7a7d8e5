"""Size worker pools to the container's CPU quota, not to the host.

A CPU limit in Kubernetes (or `docker run --cpus`) becomes a CFS bandwidth
quota: so many microseconds of CPU time per period. Python's CPU counts do not
see it. `os.cpu_count()` counts the host's CPUs and `os.process_cpu_count()`
(Python 3.13) counts the CPUs in the affinity mask; neither reads the quota.
The default sizes of `ThreadPoolExecutor`, `ProcessPoolExecutor` and
`multiprocessing.Pool` come from those counts.

This module reads the quota from the cgroup files the kernel exposes:

* cgroup v2: `cpu.max`, either `max 100000` (no limit) or `200000 100000`
  (200 ms of CPU time per 100 ms period: 2 CPUs);
* cgroup v1: `cpu.cfs_quota_us` (`-1` is no limit) and `cpu.cfs_period_us`;

finds the process's own cgroup through `/proc/self/cgroup` and
`/proc/self/mountinfo`, takes the tightest limit on the way up to the root of
the mount, and combines it with the affinity count. A fractional quota is
rounded down, with a minimum of one.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

log = logging.getLogger(__name__)


# --8<-- [start:quota]
@dataclass(frozen=True)
class CpuQuota:
    """A CFS bandwidth limit: `quota_us` of CPU time in every `period_us`.

    Attributes:
        quota_us: Microseconds of CPU time per period.
        period_us: Length of the period in microseconds (100 ms by default).
        source: The file the limit was read from.
    """

    quota_us: int
    period_us: int
    source: Path

    @property
    def cpus(self) -> Fraction:
        """The limit in CPUs, exactly: 150000/100000 is 3/2."""
        return Fraction(self.quota_us, self.period_us)

    @property
    def whole_cpus(self) -> int:
        """CPUs a CPU-bound pool may keep busy: the fraction dropped, at least 1.

        With 1.5 CPUs, one busy worker never exhausts the quota and the half
        CPU left over runs everything else in the container: the event loop,
        the probe server, the garbage collector. Two busy workers would use
        the 150 ms of a 100 ms period up after 75 ms, and every thread in the
        cgroup, probes included, would wait 25 ms for the next period.
        """
        return max(1, self.quota_us // self.period_us)


# --8<-- [end:quota]


# --8<-- [start:parse]
def parse_cpu_max(text: str) -> tuple[int, int] | None:
    """`cpu.max` (cgroup v2) → (quota, period) in µs, or None for `max`."""
    fields = text.split()
    if not fields or fields[0] == "max":
        return None
    quota, period = int(fields[0]), int(fields[1])
    if quota <= 0 or period <= 0:
        raise ValueError(f"not a CPU limit: {text.strip()!r}")
    return quota, period


def parse_cfs(quota_text: str, period_text: str) -> tuple[int, int] | None:
    """`cpu.cfs_quota_us` and `cpu.cfs_period_us` (v1); quota -1 → None."""
    quota, period = int(quota_text), int(period_text)
    if quota < 0:
        return None
    if quota == 0 or period <= 0:
        raise ValueError(f"not a CPU limit: {quota}/{period}")
    return quota, period


def read_level(directory: Path, version: int) -> CpuQuota | None:
    """The limit set on one cgroup directory; None if none or unreadable."""
    try:
        if version == 2:
            source = directory / "cpu.max"
            limit = parse_cpu_max(source.read_text())
        else:
            source = directory / "cpu.cfs_quota_us"
            period = (directory / "cpu.cfs_period_us").read_text()
            limit = parse_cfs(source.read_text(), period)
    except FileNotFoundError:
        return None  # the root cgroup has no cpu.max, for one
    except (OSError, ValueError, IndexError) as error:
        log.warning("ignoring the CPU limit in %s: %s", directory, error)
        return None
    return None if limit is None else CpuQuota(*limit, source)


# --8<-- [end:parse]


# --8<-- [start:locate]
def _unescape(field: str) -> str:
    """mountinfo writes a space as \\040, a tab as \\011 and so on."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def cpu_cgroup_dir(root: Path = Path("/")) -> tuple[Path, Path, int] | None:
    """(the process's cgroup directory, its mount point, cgroup version).

    `root` lets tests point at a copy of `/proc` and `/sys` made of plain
    files. Returns None when the process has no CPU cgroup to read.
    """
    try:
        cgroups = (root / "proc/self/cgroup").read_text().splitlines()
        mounts = (root / "proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None  # not Linux, or /proc is not mounted
    paths: dict[int, str] = {}
    for line in cgroups:  # "4:cpu,cpuacct:/kubepods/pod1/ctr" or "0::/..."
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and not controllers:
            paths.setdefault(2, path)
        elif "cpu" in controllers.split(","):
            paths[1] = path
    for version in (1, 2):  # v1 first: a hybrid host mounts v2 without "cpu"
        for line in mounts:
            fields, _, tail = (part.split() for part in line.partition(" - "))
            if version not in paths or len(fields) < 5 or len(tail) < 3:
                continue
            fstype, options = tail[0], tail[2].split(",")
            if (version, fstype) == (2, "cgroup2") or (
                (version, fstype) == (1, "cgroup") and "cpu" in options
            ):
                mount_root, mount_point = map(_unescape, fields[3:5])
                relative = os.path.relpath(paths[version], mount_root)
                if relative.startswith(".."):
                    relative = "."  # our cgroup is the root of a namespace
                top = root / mount_point.lstrip("/")
                return top / relative, top, version
    return None


# --8<-- [end:locate]


# --8<-- [start:read]
def read_cpu_quota(root: Path = Path("/")) -> CpuQuota | None:
    """The tightest CPU quota on the process's cgroup and its ancestors.

    The kernel throttles a cgroup when it or any ancestor runs out of quota,
    so a limit set on a parent cgroup counts as much as one set on the
    process's own. Only the ancestors inside the mount are visible; inside a
    container with its own cgroup namespace, that is the container's subtree.

    Args:
        root: Where `/proc` and `/sys` are; tests use a tree of plain files.

    Returns:
        The limit with the fewest CPUs, or None if no level sets one.
    """
    found = cpu_cgroup_dir(root)
    if found is None:
        return None
    level, top, version = found
    tightest: CpuQuota | None = None
    while True:
        quota = read_level(level, version)
        if quota is not None and (tightest is None or quota.cpus < tightest.cpus):
            tightest = quota
        if level == top or level == level.parent:
            return tightest
        level = level.parent


# --8<-- [end:read]


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


if __name__ == "__main__":
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    budget = cpu_budget()
    log.info(budget.describe())
    processes, threads = pool_sizes(budget)
    with (
        ProcessPoolExecutor(max_workers=processes) as cpu_pool,
        ThreadPoolExecutor(max_workers=threads) as io_pool,
    ):
        log.info("pools: %d processes, %d threads", processes, threads)
        cpu_pool.submit(sum, range(10)).result(timeout=30)
        io_pool.submit(sum, range(10)).result(timeout=30)
# --8<-- [end:pools]
