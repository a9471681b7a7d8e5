"""Tests for snippets/build_optimization/cache_maintenance/.

Cleaners run in real processes (``multiprocessing`` with the spawn start
method, or ``subprocess``), and the lock is a real ``flock`` on a real file.
Races are deterministic: a cleaner is held between measuring and deleting,
by a barrier, an event, or a line on stdin that the test sends. A crash is a
SIGKILL of a cleaner that holds the lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from snippets.build_optimization import cache_maintenance as cm
from snippets.build_optimization.cache_maintenance import demo, naive, store
from snippets.support import build_optimization_cleaner as cleaners
from tests.conftest import ROOT
from tests.processes import read_line

POLICY = cleaners.POLICY
ENTRY = 1000
CLEANER = "snippets.support.build_optimization_cleaner"


def spawn(root: Path, mode: str, timeout: float = 0.0) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", CLEANER, str(root), mode, str(timeout)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> cm.Eviction:
    """Let a held cleaner go on and return what it did."""
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    return outcome(proc)


def outcome(proc: subprocess.Popen[str]) -> cm.Eviction:
    result = cm.Eviction(**json.loads(read_line(proc)))
    assert proc.wait(timeout=10) == 0
    return result


def reap(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            pipe.close()


def size(root: Path) -> int:
    return sum(entry.size for entry in cm.scan(root))


def name_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def age(root: Path, data: bytes) -> float:
    name = cm.publish(root, data)
    return time.time() - (cm.entries_dir(root) / name).stat().st_mtime


# --------------------------------------------------------------------------- #
# See it break: four cleaners at once
# --------------------------------------------------------------------------- #


def test_four_cleaners_without_a_lock_trim_far_below_the_limit(tmp_path: Path) -> None:
    results = demo.cleaners_at_once(tmp_path, pattern=False)
    needed = 100 * ENTRY - int(POLICY.limit_bytes * POLICY.target_ratio)
    print(f"\nneeded {needed} bytes freed, freed {sum(r.freed_bytes for r in results)}")
    assert all(r.ran for r in results)
    # Each cleaner frees what the cache needed, as if it were alone.
    assert [r.freed_bytes for r in results] == [15 * ENTRY] * 4
    assert needed <= 15 * ENTRY
    left = size(tmp_path)
    assert left == 100 * ENTRY - 60 * ENTRY
    assert left < POLICY.limit_bytes * 0.5


def test_four_cleaners_with_the_lock_evict_once(tmp_path: Path) -> None:
    results = demo.cleaners_at_once(tmp_path, pattern=True)
    ran = [r for r in results if r.ran]
    assert len(ran) == 1
    assert sorted(r.ran for r in results) == [False, False, False, True]
    assert ran[0].deleted == 15
    left = size(tmp_path)
    assert left == ran[0].size_after == 85 * ENTRY
    target = POLICY.limit_bytes * POLICY.target_ratio
    assert target - ENTRY <= left <= POLICY.limit_bytes


def test_a_later_cleaner_measures_again_and_does_nothing(tmp_path: Path) -> None:
    cleaners.fill(tmp_path)
    first = cm.evict(tmp_path, POLICY)
    second = cm.evict(tmp_path, POLICY)
    assert (first.ran, first.deleted) == (True, 15)
    assert (second.ran, second.deleted, second.size_after) == (True, 0, 85 * ENTRY)


def test_eviction_deletes_the_oldest_first(tmp_path: Path) -> None:
    contents = cleaners.fill(tmp_path)
    cm.evict(tmp_path, POLICY)
    names = {entry.path.name for entry in cm.scan(tmp_path)}
    assert names == {name_of(data) for data in contents[15:]}


def test_files_removed_by_someone_else_count_as_freed(tmp_path: Path) -> None:
    """The ccache 3.4.2 bug: a cleaner that counts only its own deletions."""
    contents = cleaners.fill(tmp_path)
    oldest = [cm.entries_dir(tmp_path) / name_of(data) for data in contents[:10]]

    def someone_else_deletes() -> None:
        for path in oldest:
            path.unlink()

    result = cm.evict(tmp_path, POLICY, between=someone_else_deletes)
    assert (result.deleted, result.freed_bytes) == (5, 5 * ENTRY)
    assert size(tmp_path) == result.size_after == 85 * ENTRY


def test_the_unlocked_cleaner_over_deletes_in_the_same_case(tmp_path: Path) -> None:
    contents = cleaners.fill(tmp_path)
    oldest = [cm.entries_dir(tmp_path) / name_of(data) for data in contents[:10]]

    def someone_else_deletes() -> None:
        for path in oldest:
            path.unlink()

    result = naive.evict_unlocked(tmp_path, POLICY, between=someone_else_deletes)
    assert result.deleted == 15
    assert size(tmp_path) == 75 * ENTRY  # 10 more than the limit asked for


# --------------------------------------------------------------------------- #
# See it break: a cleaner deletes what a build has just published
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("pattern", [False, True], ids=["no-lock", "pattern"])
def test_republish_during_eviction(tmp_path: Path, pattern: bool) -> None:
    result = demo.republish_during_eviction(tmp_path, pattern)
    if pattern:
        assert result == "entry kept, read hits"
        assert size(tmp_path) == 85 * ENTRY  # it still evicted enough, around it
    else:
        assert result == "entry deleted, read misses"


def test_a_touch_between_the_scan_and_the_delete_keeps_the_entry(
    tmp_path: Path,
) -> None:
    contents = cleaners.fill(tmp_path)
    name = name_of(contents[0])  # the oldest: first in line for eviction
    result = cm.evict(tmp_path, POLICY, between=lambda: cm.read(tmp_path, name))
    assert cm.read(tmp_path, name) == contents[0]
    assert result.deleted == 15
    assert cm.read(tmp_path, name_of(contents[15])) is None  # deleted instead
    assert not list(cm.entries_dir(tmp_path).glob(store.TRASH_PREFIX + "*"))


def test_entries_younger_than_the_grace_period_are_never_evicted(
    tmp_path: Path,
) -> None:
    for n in range(100):
        cm.publish(tmp_path, n.to_bytes(4, "big") * (ENTRY // 4))
    result = cm.evict(tmp_path, POLICY)
    assert (result.ran, result.deleted) == (True, 0)
    assert size(tmp_path) == 100 * ENTRY  # over the limit, and that is the price


# --------------------------------------------------------------------------- #
# The lock: try, do not wait; survives SIGKILL
# --------------------------------------------------------------------------- #


def test_a_build_skips_maintenance_while_another_holds_the_lock(
    tmp_path: Path,
) -> None:
    cleaners.fill(tmp_path)
    holder = spawn(tmp_path, "pattern-hold")
    try:
        assert read_line(holder) == "measured"
        started = time.monotonic()
        skipped = outcome(spawn(tmp_path, "pattern"))
        elapsed = time.monotonic() - started
        waited = outcome(spawn(tmp_path, "pattern", timeout=0.3))
        assert skipped == waited == cm.Eviction(ran=False)
        assert elapsed < 5  # process start-up, not a wait for the holder
        assert size(tmp_path) == 100 * ENTRY
        assert finish(holder).deleted == 15
    finally:
        reap(holder)


def test_the_lock_waits_up_to_its_timeout(tmp_path: Path) -> None:
    with cm.maintenance_lock(tmp_path) as held:
        assert held
        started = time.monotonic()
        # flock locks belong to the open file: a second open conflicts even
        # in the same process.
        with cm.maintenance_lock(tmp_path, timeout=0.3) as second:
            elapsed = time.monotonic() - started
            assert not second
        assert 0.3 <= elapsed < 3
    with cm.maintenance_lock(tmp_path) as again:
        assert again


def test_a_killed_cleaner_leaves_no_stale_lock(tmp_path: Path) -> None:
    cleaners.fill(tmp_path)
    holder = spawn(tmp_path, "pattern-hold")
    try:
        assert read_line(holder) == "measured"
        holder.send_signal(signal.SIGKILL)
        assert holder.wait(timeout=10) == -signal.SIGKILL
    finally:
        reap(holder)
    result = cm.evict(tmp_path, POLICY)
    assert (result.ran, result.deleted) == (True, 15)


def test_two_unlocked_cleaners_both_evict(tmp_path: Path) -> None:
    cleaners.fill(tmp_path)
    first, second = spawn(tmp_path, "naive-hold"), spawn(tmp_path, "naive-hold")
    try:
        assert read_line(first) == read_line(second) == "measured"
        results = [finish(first), finish(second)]
    finally:
        reap(first)
        reap(second)
    assert [r.deleted for r in results] == [15, 15]
    assert size(tmp_path) == 70 * ENTRY


# --------------------------------------------------------------------------- #
# Publish, read and leftovers
# --------------------------------------------------------------------------- #


def test_publish_touches_an_existing_entry(tmp_path: Path) -> None:
    data = b"object code"
    name = cm.publish(tmp_path, data)
    path = cm.entries_dir(tmp_path) / name
    os.utime(path, (1_000_000, 1_000_000))
    assert naive.publish_unchecked(tmp_path, data) == name
    assert path.stat().st_mtime == 1_000_000
    assert cm.publish(tmp_path, data) == name
    assert age(tmp_path, data) < 60


def test_read_misses_on_missing_or_damaged_entries(tmp_path: Path) -> None:
    name = cm.publish(tmp_path, b"object code")
    path = cm.entries_dir(tmp_path) / name
    os.utime(path, (1_000_000, 1_000_000))
    assert cm.read(tmp_path, name) == b"object code"
    assert path.stat().st_mtime > 1_000_000  # a hit refreshes it
    path.write_bytes(b"object cod3")
    assert cm.read(tmp_path, name) is None
    assert not path.exists()  # so that the next publish writes it again
    assert cm.read(tmp_path, name) is None
    assert cm.publish(tmp_path, b"object code") == name
    assert cm.read(tmp_path, name) == b"object code"


def test_eviction_removes_old_leftovers_only(tmp_path: Path) -> None:
    entries = cm.entries_dir(tmp_path)
    old_tmp = entries / f"{store.TMP_PREFIX}dead-writer"
    old_trash = entries / f"{store.TRASH_PREFIX}dead-cleaner"
    live_tmp = entries / f"{store.TMP_PREFIX}live-writer"
    for path in (old_tmp, old_trash, live_tmp):
        path.write_bytes(b"x" * ENTRY)
    for path in (old_tmp, old_trash):
        os.utime(path, (1_000_000, 1_000_000))
    result = cm.evict(tmp_path, POLICY)
    assert result == cm.Eviction(ran=True)
    assert sorted(p.name for p in entries.iterdir()) == [live_tmp.name]


# --------------------------------------------------------------------------- #
# The page's output
# --------------------------------------------------------------------------- #


def test_the_races_the_page_shows(tmp_path: Path) -> None:
    lines = demo.races(tmp_path)
    assert lines[1].endswith("4 evicted, 60 deleted, 40000 bytes left")
    assert lines[2].endswith("1 evicted, 3 skipped, 15 deleted, 85000 bytes left")
    assert lines[3].endswith("entry deleted, read misses")
    assert lines[4].endswith("entry kept, read hits")
