"""Tests for snippets/container_orchestration/cpu_quota_sizing.py.

Setting a real CFS quota needs root and a writable cgroup tree, so the reading
code is tested on trees of plain files under tmp_path that copy what the kernel
shows (`/proc/self/cgroup`, `/proc/self/mountinfo`, `cpu.max` or the v1
files): cgroup v1 and v2, no limit, fractional limits, limits on a parent.
Then it reads this machine's real files and prints what they say. Affinity and
the `-X cpu_count` / `PYTHON_CPU_COUNT` override are real: they run in child
processes.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import pytest

from snippets.container_orchestration.cpu_quota_sizing import (
    CpuBudget,
    available_cpus,
    cpu_budget,
    cpu_cgroup_dir,
    cpu_count_override,
    pool_sizes,
    read_cpu_quota,
)
from tests.conftest import ROOT, OutputCheck

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


@pytest.fixture(autouse=True)
def no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests choose the override themselves."""
    monkeypatch.delenv("PYTHON_CPU_COUNT", raising=False)


def budget(tree: Tree, base: Path) -> CpuBudget:
    return cpu_budget(tree.build(base), available=HOST_CPUS)


# --------------------------------------------------------------------------- #
# See it break: the stdlib sizes pools from the host, not the quota
# --------------------------------------------------------------------------- #


def stdlib_default_sizes() -> tuple[int, int]:
    """(processes, threads) that ProcessPoolExecutor() and ThreadPoolExecutor() pick."""
    with ProcessPoolExecutor() as processes, ThreadPoolExecutor() as threads:
        # Private, but the only place the chosen default is visible.
        return int(vars(processes)["_max_workers"]), threads._max_workers


def stdlib_cpu_count() -> int:
    """The count the 3.x stdlib pools read: process_cpu_count() since 3.13."""
    if sys.version_info >= (3, 13):
        return os.process_cpu_count() or 1
    return os.cpu_count() or 1


def test_default_pools_ignore_a_one_cpu_quota(tmp_path: Path) -> None:
    one_cpu = Tree(
        "v2 one cpu", "0::/\n", [PROC, V2], {"sys/fs/cgroup/cpu.max": "100000 100000"}
    )
    aware = cpu_budget(one_cpu.build(tmp_path))  # this machine's real affinity
    naive_processes, naive_threads = stdlib_default_sizes()
    print(f"stdlib defaults: {naive_processes} processes, {naive_threads} threads")
    print(f"quota-aware:     {pool_sizes(aware)}  ({aware.describe()})")
    assert naive_processes == stdlib_cpu_count()  # the host, quota or not
    assert naive_threads == min(32, stdlib_cpu_count() + 4)
    assert aware.cpus == 1
    assert pool_sizes(aware) == (1, 5)
    assert naive_threads > 1  # even on a one-CPU host: five threads, four waiting


def test_on_a_64_cpu_host_the_defaults_are_64_processes_and_32_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, expected_output: OutputCheck
) -> None:
    pretend_host_has(HOST_CPUS, monkeypatch)
    naive_processes, naive_threads = stdlib_default_sizes()
    tree = TREES[0]  # cpu.max 200000 100000
    processes, threads = pool_sizes(budget(tree, tmp_path))
    assert (naive_processes, naive_threads) == (64, 32)
    assert (processes, threads) == (2, 6)
    text = "\n".join(
        [
            f"host: {HOST_CPUS} CPUs; {tree.shown} (2 CPUs)",
            f"ProcessPoolExecutor()  {naive_processes} processes",
            f"ThreadPoolExecutor()   {naive_threads} threads",
            f"quota-aware            {processes} processes, {threads} threads",
        ]
    )
    print(text)
    expected_output("container_orchestration/cpu_quota_sizing.defaults", text)


def pretend_host_has(cpus: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the count the stdlib pools read return `cpus` (the quota is unread)."""
    name = "process_cpu_count" if sys.version_info >= (3, 13) else "cpu_count"
    monkeypatch.setattr(os, name, lambda: cpus)


# --------------------------------------------------------------------------- #
# Reading the quota
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("tree", TREES, ids=lambda tree: tree.label)
def test_reads_the_tightest_limit(tree: Tree, tmp_path: Path) -> None:
    quota = read_cpu_quota(tree.build(tmp_path))
    assert (quota.cpus if quota else None) == tree.expected
    if quota is not None:
        assert quota.source.is_file()
        assert quota.source.is_relative_to(tmp_path)


@pytest.mark.parametrize("tree", TREES, ids=lambda tree: tree.label)
def test_budget_rounds_down_with_a_floor_of_one(tree: Tree, tmp_path: Path) -> None:
    result = budget(tree, tmp_path)
    expected = HOST_CPUS if tree.expected is None else max(1, int(tree.expected))
    assert result.cpus == expected


def test_finds_the_process_cgroup_below_the_mount(tmp_path: Path) -> None:
    tree = TREES[4]  # v2, limit on parent
    found = cpu_cgroup_dir(tree.build(tmp_path))
    assert found is not None
    directory, top, version = found
    assert version == 2
    assert directory.name == "cri-ctr1.scope"
    assert directory.is_relative_to(top)
    assert top.parts[-3:] == ("sys", "fs", "cgroup")


def test_v1_without_a_cgroup_namespace_reads_the_mount_point(tmp_path: Path) -> None:
    tree = TREES[6]  # mount root /docker/abc, process in /docker/abc
    found = cpu_cgroup_dir(tree.build(tmp_path))
    assert found is not None
    assert found[0] == found[1]
    assert found[2] == 1


def test_a_malformed_limit_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tree = Tree("garbage", "0::/\n", [PROC, V2], {"sys/fs/cgroup/cpu.max": "lots\n"})
    with caplog.at_level(logging.WARNING):
        assert read_cpu_quota(tree.build(tmp_path)) is None
    assert "ignoring the CPU limit" in caplog.text


def test_sizes_table(tmp_path: Path, expected_output: OutputCheck) -> None:
    lines = [
        f"affinity: {HOST_CPUS} CPUs",
        f"{'cgroup':<22}{'limit':<24}{'CPUs':>5}{'processes':>11}{'threads':>9}",
    ]
    for tree in TREES:
        result = budget(tree, tmp_path)
        cpus = "-" if result.quota is None else f"{float(result.quota.cpus):g}"
        processes, threads = pool_sizes(result)
        lines.append(
            f"{tree.label:<22}{tree.shown:<24}{cpus:>5}{processes:>11}{threads:>9}"
        )
    text = "\n".join(lines)
    print(text)
    expected_output("container_orchestration/cpu_quota_sizing.sizes", text)


# --------------------------------------------------------------------------- #
# Affinity and the override, in real child processes
# --------------------------------------------------------------------------- #


def run_python(
    code: str, *args: str, argv: tuple[str, ...] = (), env: dict[str, str] | None = None
) -> str:
    """Run `python [args] -c code [argv]` in the repository; return its stdout."""
    result = subprocess.run(
        [sys.executable, *args, "-c", code, *argv],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_affinity_limits_available_cpus_on_every_version() -> None:
    code = (
        "import os\n"
        "from snippets.container_orchestration.cpu_quota_sizing import available_cpus\n"
        "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "print(available_cpus(), os.cpu_count())\n"
    )
    available, host = map(int, run_python(code).split())
    print(f"pinned to one CPU: available_cpus() {available}, os.cpu_count() {host}")
    assert available == 1
    assert host == os.cpu_count()  # the host count ignores affinity


BUDGET_CODE = (
    "import sys\n"
    "from pathlib import Path\n"
    "from snippets.container_orchestration.cpu_quota_sizing import cpu_budget\n"
    "print(cpu_budget(Path(sys.argv[1])).cpus)\n"
)


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ([], {}, 1),
        (["-X", "cpu_count=3"], {}, 3),
        ([], {"PYTHON_CPU_COUNT": "5"}, 5),
        (["-X", "cpu_count=3"], {"PYTHON_CPU_COUNT": "5"}, 3),
        (["-X", "cpu_count=default"], {"PYTHON_CPU_COUNT": "5"}, 1),
        (["-E"], {"PYTHON_CPU_COUNT": "5"}, 1),
    ],
    ids=["quota", "x-option", "env", "x-wins", "x-default", "ignore-env"],
)
def test_the_override_wins_over_the_quota(
    tmp_path: Path, args: list[str], env: dict[str, str], expected: int
) -> None:
    one_cpu = Tree(
        "v2 one cpu", "0::/\n", [PROC, V2], {"sys/fs/cgroup/cpu.max": "100000 100000"}
    )
    root = one_cpu.build(tmp_path)
    output = run_python(BUDGET_CODE, *args, argv=(str(root),), env=env)
    assert int(output) == expected


def test_a_bad_override_is_ignored(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PYTHON_CPU_COUNT", "0")
    with caplog.at_level(logging.WARNING):
        assert cpu_count_override() is None
    assert "ignoring the CPU count override" in caplog.text


# --------------------------------------------------------------------------- #
# This machine
# --------------------------------------------------------------------------- #


def test_this_machine() -> None:
    found = cpu_cgroup_dir()
    real = cpu_budget()
    print(f"cgroup directory: {found}")
    if found is not None:
        for name in ("cpu.max", "cpu.cfs_quota_us", "cpu.cfs_period_us"):
            path = found[0] / name
            if path.is_file():
                print(f"{path}: {path.read_text().strip()}")
    print(real.describe())
    assert real.available == available_cpus()
    assert 1 <= real.cpus <= max(real.available, real.override or 1)
    if real.quota is None and real.override is None:
        assert real.cpus == real.available
    if real.quota is not None:
        assert real.quota.source.is_file()
        assert real.cpus == min(real.available, max(1, int(real.quota.cpus)))
