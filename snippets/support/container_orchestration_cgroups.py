"""Cgroup layouts as plain files: what /proc/self and the limit files show.

Setting a real CFS quota needs root and a writable cgroup tree, so the CPU
quota demos and tests build copies of what the kernel shows under a temporary
directory: cgroup v1 and v2, no limit, fractional limits, limits on a parent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

__all__ = ["HOST_CPUS", "PROC", "TREES", "V2", "Tree"]

V2 = "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw"
V2_UNIFIED = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw"
V1_CPU = (
    "32 31 0:29 {root} /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime"
    " shared:7 - cgroup cgroup rw,cpu,cpuacct"
)
V1_MEMORY = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory"
PROC = "22 27 0:21 / /proc rw,relatime - proc proc rw"
HOST_CPUS = 64  # what the tables below pretend the machine has


@dataclass(frozen=True)
class Tree:
    """One cgroup layout: what /proc/self shows and the limit files."""

    label: str
    cgroup: str
    mounts: list[str]
    files: dict[str, str] = field(default_factory=dict)
    expected: Fraction | None = None  # the tightest limit, in CPUs
    shown: str = ""  # the limit as the page's table shows it

    def build(self, base: Path) -> Path:
        root = base / self.label.replace(" ", "-").replace(",", "")
        (root / "proc/self").mkdir(parents=True)
        (root / "proc/self/cgroup").write_text(self.cgroup)
        (root / "proc/self/mountinfo").write_text("\n".join(self.mounts) + "\n")
        for relative, text in self.files.items():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_text(text)
        return root


V2_POD = "sys/fs/cgroup/kubepods.slice/kubepods-pod1.slice"
V1_DIR = "sys/fs/cgroup/cpu,cpuacct"

TREES = [
    Tree(
        "v2, limit 2",
        "0::/\n",
        [PROC, V2],
        {"sys/fs/cgroup/cpu.max": "200000 100000\n"},
        Fraction(2),
        "cpu.max 200000 100000",
    ),
    Tree(
        "v2, no limit",
        "0::/\n",
        [PROC, V2],
        {"sys/fs/cgroup/cpu.max": "max 100000\n"},
        None,
        "cpu.max max 100000",
    ),
    Tree(
        "v2, limit 1.5",
        "0::/\n",
        [PROC, V2],
        {"sys/fs/cgroup/cpu.max": "150000 100000\n"},
        Fraction(3, 2),
        "cpu.max 150000 100000",
    ),
    Tree(
        "v2, limit 500m",
        "0::/\n",
        [PROC, V2],
        {"sys/fs/cgroup/cpu.max": "50000 100000\n"},
        Fraction(1, 2),
        "cpu.max 50000 100000",
    ),
    Tree(
        "v2, limit on parent",
        "0::/kubepods.slice/kubepods-pod1.slice/cri-ctr1.scope\n",
        [PROC, V2],
        {
            "sys/fs/cgroup/kubepods.slice/cpu.max": "max 100000\n",
            f"{V2_POD}/cpu.max": "300000 100000\n",
            f"{V2_POD}/cri-ctr1.scope/cpu.max": "max 100000\n",
        },
        Fraction(3),
        "parent 300000 100000",
    ),
    Tree(
        "v2, child tighter",
        "0::/kubepods.slice/kubepods-pod1.slice/cri-ctr1.scope\n",
        [PROC, V2],
        {
            f"{V2_POD}/cpu.max": "400000 100000\n",
            f"{V2_POD}/cri-ctr1.scope/cpu.max": "100000 100000\n",
        },
        Fraction(1),
        "child 100000 100000",
    ),
    Tree(
        "v1, limit 1",
        "4:cpu,cpuacct:/docker/abc\n3:memory:/docker/abc\n",
        [PROC, V1_CPU.format(root="/docker/abc"), V1_MEMORY],
        {
            f"{V1_DIR}/cpu.cfs_quota_us": "100000\n",
            f"{V1_DIR}/cpu.cfs_period_us": "100000\n",
        },
        Fraction(1),
        "cfs 100000/100000",
    ),
    Tree(
        "v1, no limit",
        "4:cpu,cpuacct:/\n",
        [PROC, V1_CPU.format(root="/")],
        {
            f"{V1_DIR}/cpu.cfs_quota_us": "-1\n",
            f"{V1_DIR}/cpu.cfs_period_us": "100000\n",
        },
        None,
        "cfs -1/100000",
    ),
    Tree(
        "v1, 200 ms period",
        "4:cpu,cpuacct:/batch\n",
        [PROC, V1_CPU.format(root="/")],
        {
            f"{V1_DIR}/batch/cpu.cfs_quota_us": "300000\n",
            f"{V1_DIR}/batch/cpu.cfs_period_us": "200000\n",
        },
        Fraction(3, 2),
        "cfs 300000/200000",
    ),
    Tree(
        "hybrid v1 + v2",
        "1:cpu,cpuacct:/\n0::/\n",
        [PROC, V1_CPU.format(root="/"), V2_UNIFIED],
        {
            f"{V1_DIR}/cpu.cfs_quota_us": "200000\n",
            f"{V1_DIR}/cpu.cfs_period_us": "100000\n",
        },
        Fraction(2),
        "cfs 200000/100000",
    ),
    Tree(
        "escaped mount point",
        "0::/\n",
        [PROC, r"30 23 0:26 / /run/my\040cgroup rw - cgroup2 cgroup2 rw"],
        {"run/my cgroup/cpu.max": "100000 100000\n"},
        Fraction(1),
        "cpu.max 100000 100000",
    ),
    Tree("no cgroup mounted", "0::/\n", [PROC], {}, None, "(none)"),
]
