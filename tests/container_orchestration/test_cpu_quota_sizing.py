"""Tests for snippets/container_orchestration/cpu_quota_sizing/.

The reading code is tested on trees of plain files under tmp_path that copy
what the kernel shows (`/proc/self/cgroup`, `/proc/self/mountinfo`, `cpu.max` or the v1
files): cgroup v1 and v2, no limit, fractional limits, limits on a parent.
Then it reads this machine's real files and prints what they say. Affinity and
the `-X cpu_count` / `PYTHON_CPU_COUNT` override are real: they run in child
processes. Last, a real quota: `docker run --cpus=1` (the `docker` fixture),
where the counts, the reader and the throttling in `cpu.stat` are measured.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from snippets.container_orchestration.cpu_quota_sizing import (
    available_cpus,
    cpu_budget,
    cpu_cgroup_dir,
    cpu_count_override,
    pool_sizes,
    read_cpu_quota,
)
from snippets.container_orchestration.cpu_quota_sizing.demo import (
    budget,
    host_with,
    stdlib_default_sizes,
)
from snippets.support.container_orchestration_cgroups import (
    HOST_CPUS,
    PROC,
    TREES,
    V2,
    Tree,
)
from tests.conftest import ROOT

CHILDREN = "snippets.support.container_orchestration_children"


@pytest.fixture(autouse=True)
def no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests choose the override themselves."""
    monkeypatch.delenv("PYTHON_CPU_COUNT", raising=False)


# --------------------------------------------------------------------------- #
# See it break: the stdlib sizes pools from the host, not the quota
# --------------------------------------------------------------------------- #


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
    tmp_path: Path,
) -> None:
    with host_with(HOST_CPUS):
        naive_processes, naive_threads = stdlib_default_sizes()
    processes, threads = pool_sizes(budget(TREES[0], tmp_path))  # cpu.max 2 CPUs
    assert (naive_processes, naive_threads) == (64, 32)
    assert (processes, threads) == (2, 6)


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


# --------------------------------------------------------------------------- #
# Affinity and the override, in real child processes
# --------------------------------------------------------------------------- #


def run_child(
    program: str,
    *args: str,
    argv: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> str:
    """Run `python [args] -m CHILDREN program [argv]`; return its stdout."""
    result = subprocess.run(
        [sys.executable, *args, "-m", CHILDREN, program, *argv],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_affinity_limits_available_cpus_on_every_version() -> None:
    available, host = map(int, run_child("pinned-cpus").split())
    print(f"pinned to one CPU: available_cpus() {available}, os.cpu_count() {host}")
    assert available == 1
    assert host == os.cpu_count()  # the host count ignores affinity


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
    output = run_child("budget-cpus", *args, argv=(str(root),), env=env)
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


# --------------------------------------------------------------------------- #
# A real quota: docker run --cpus=1 (cgroup v1 on this machine)
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def inside(docker: str) -> dict[str, dict[str, Any]]:
    """The probe's reports from `docker run --cpus=1`: 3.11 with the pools, 3.13."""
    from snippets.support.container_orchestration_cpu_docker import inside_container

    return {
        "3.11": inside_container("1"),
        "3.13": inside_container("1", python="3.13", tasks=0),
    }


def test_python_counts_inside_docker_cpus_1_are_the_hosts(
    inside: dict[str, Any],
) -> None:
    host = os.cpu_count()
    assert inside["3.11"]["cpu_count"] == host
    assert inside["3.13"]["cpu_count"] == host
    assert inside["3.13"]["process_cpu_count"] == host  # affinity, not quota


def test_the_reader_finds_the_quota_inside_docker(inside: dict[str, Any]) -> None:
    for report in inside.values():
        assert report["quota_cpus"] == 1.0
        assert report["budget_cpus"] == 1
        assert report["quota_file"] in {
            "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",  # v1, as on this machine
            "/sys/fs/cgroup/cpu.max",  # v2
        }


def test_an_oversized_pool_is_throttled_and_a_right_sized_one_is_not(
    inside: dict[str, Any],
) -> None:
    oversized, right = inside["3.11"]["oversized"], inside["3.11"]["right_sized"]
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one CPU: the stdlib default is already one worker")
    assert oversized["workers"] == os.cpu_count() and right["workers"] == 1
    # throttled time as a share of wall time: most of it against almost none.
    # Not nr_throttled: a one-worker pool can be counted throttled in every
    # period too, for a fraction of a millisecond each time.
    assert oversized["throttled_ms"] / 1000 / oversized["wall"] > 0.4
    assert right["throttled_ms"] / 1000 / right["wall"] < 0.1
