"""Size worker pools to the container's CPU quota, not to the host.

A CPU limit in Kubernetes (or `docker run --cpus`) becomes a CFS bandwidth
quota: so many microseconds of CPU time per period. Python's CPU counts do not
see it. `os.cpu_count()` counts the host's CPUs and `os.process_cpu_count()`
(Python 3.13) counts the CPUs in the affinity mask; neither reads the quota.
The default sizes of `ThreadPoolExecutor`, `ProcessPoolExecutor` and
`multiprocessing.Pool` come from those counts.

This package reads the quota from the cgroup files the kernel exposes:

* cgroup v2: `cpu.max`, either `max 100000` (no limit) or `200000 100000`
  (200 ms of CPU time per 100 ms period: 2 CPUs);
* cgroup v1: `cpu.cfs_quota_us` (`-1` is no limit) and `cpu.cfs_period_us`;

finds the process's own cgroup through `/proc/self/cgroup` and
`/proc/self/mountinfo`, takes the tightest limit on the way up to the root of
the mount, and combines it with the affinity count. A fractional quota is
rounded down, with a minimum of one.
"""

from .budget import (
    CpuBudget,
    available_cpus,
    cpu_budget,
    cpu_count_override,
    pool_sizes,
)
from .quota import (
    CpuQuota,
    cpu_cgroup_dir,
    parse_cfs,
    parse_cpu_max,
    read_cpu_quota,
    read_level,
)

__all__ = [
    "CpuBudget",
    "CpuQuota",
    "available_cpus",
    "cpu_budget",
    "cpu_cgroup_dir",
    "cpu_count_override",
    "parse_cfs",
    "parse_cpu_max",
    "pool_sizes",
    "read_cpu_quota",
    "read_level",
]
