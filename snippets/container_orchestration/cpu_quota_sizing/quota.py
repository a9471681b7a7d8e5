"""Read the CPU quota of this process's cgroup, v1 or v2.

* cgroup v2: `cpu.max`, either `max 100000` (no limit) or `200000 100000`
  (200 ms of CPU time per 100 ms period: 2 CPUs);
* cgroup v1: `cpu.cfs_quota_us` (`-1` is no limit) and `cpu.cfs_period_us`.

`read_cpu_quota` finds the process's own cgroup through `/proc/self/cgroup`
and `/proc/self/mountinfo` and takes the tightest limit on the way up to the
root of the mount.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

__all__ = [
    "CpuQuota",
    "cpu_cgroup_dir",
    "parse_cfs",
    "parse_cpu_max",
    "read_cpu_quota",
    "read_level",
]

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
