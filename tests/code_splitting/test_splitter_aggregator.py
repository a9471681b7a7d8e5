"""Tests for snippets/code_splitting/splitter_aggregator.py.

Workers are real processes; the crash is a real SIGKILL that a worker sends
itself on chunk 7 (once, recorded in a marker file), which breaks the pool.
"""

from __future__ import annotations

import logging
import os
import random
import time
from functools import partial
from pathlib import Path

import pytest

from snippets.code_splitting.splitter_aggregator import (
    Aggregator,
    Chunk,
    IncompleteJob,
    Part,
    crash_once,
    naive_aggregate,
    naive_run,
    poison,
    run_job,
    split,
    transform,
)

WORKERS = 4
CHUNKS = split("job", [f"row {i:02}" for i in range(40)], size=4)
SERIAL = [row for chunk in CHUNKS for row in transform(chunk).rows]


def slow(chunk: Chunk, seq: int, seconds: float) -> Part:
    """A worker that hangs on one chunk."""
    if chunk.seq == seq:
        time.sleep(seconds)
    return transform(chunk)


def hang_and_record(chunk: Chunk, seq: int, pids: str, seconds: float) -> Part:
    """Record this worker's pid; hang on one chunk (a stuck C call, a deadlock)."""
    Path(pids, str(os.getpid())).touch()
    if chunk.seq == seq:
        time.sleep(seconds)
    return transform(chunk)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_fix_no_worker_survives_a_round_that_hit_the_deadline(
    tmp_path: Path,
) -> None:
    hang = partial(hang_and_record, seq=2, pids=str(tmp_path), seconds=30)
    with pytest.raises(IncompleteJob) as error:
        run_job(split("hung", ["row"] * 8, size=2), hang, 2, retries=0, timeout=6)
    assert 2 in error.value.missing
    pids = [int(path.name) for path in tmp_path.iterdir()]
    assert pids, "no worker ran"
    deadline = time.monotonic() + 10
    while any(map(alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [pid for pid in pids if alive(pid)] == []  # none left hanging


def test_split_numbers_every_chunk() -> None:
    assert [chunk.seq for chunk in CHUNKS] == list(range(10))
    assert {chunk.total for chunk in CHUNKS} == {10}
    assert [row for chunk in CHUNKS for row in chunk.rows] == [
        f"row {i:02}" for i in range(40)
    ]
    assert [len(c.rows) for c in split("j", ["a"] * 5, size=2)] == [2, 2, 1]


def test_break_killed_worker_is_silently_accepted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    crash = partial(crash_once, seq=7, marker=str(tmp_path / "crashed"))
    with caplog.at_level(logging.WARNING):
        rows = naive_run(CHUNKS, crash, WORKERS)  # returns, does not raise
    assert (tmp_path / "crashed").exists()  # the worker really died
    assert "BrokenProcessPool" in caplog.text
    assert len(rows) < len(SERIAL)
    assert not set(transform(CHUNKS[7]).rows) & set(rows)


def test_break_arrival_order_and_duplicates_corrupt_the_result() -> None:
    arrivals = [transform(chunk) for chunk in CHUNKS]
    random.Random(7).shuffle(arrivals)
    arrivals.append(transform(CHUNKS[3]))
    rows = naive_aggregate(arrivals)
    assert len(rows) == len(SERIAL) + len(CHUNKS[3].rows)
    assert sorted(set(rows)) == sorted(SERIAL)  # same rows, wrong order, doubled
    assert rows != SERIAL


def test_fix_aggregator_orders_dedupes_and_refuses_gaps() -> None:
    aggregator = Aggregator("job", len(CHUNKS))
    arrivals = [transform(chunk) for chunk in CHUNKS]
    random.Random(7).shuffle(arrivals)
    last = arrivals.pop()
    for part in arrivals:
        assert aggregator.add(part)
    with pytest.raises(IncompleteJob) as error:
        aggregator.result()
    assert error.value.missing == (last.seq,)
    assert aggregator.add(last)
    assert not aggregator.add(transform(CHUNKS[3]))
    assert aggregator.duplicates == 1
    assert aggregator.result() == SERIAL


def test_aggregator_rejects_foreign_parts() -> None:
    aggregator = Aggregator("job", len(CHUNKS))
    with pytest.raises(ValueError, match="another job"):
        aggregator.add(Part("other", 0, len(CHUNKS), ()))
    with pytest.raises(ValueError, match="out of range"):
        aggregator.add(Part("job", len(CHUNKS), len(CHUNKS), ()))


def test_fix_killed_worker_chunk_is_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    crash = partial(crash_once, seq=7, marker=str(tmp_path / "crashed"))
    with caplog.at_level(logging.WARNING):
        rows = run_job(CHUNKS, crash, WORKERS)
    assert (tmp_path / "crashed").exists()
    assert "a worker died" in caplog.text
    assert rows == SERIAL


def test_fix_permanent_failure_raises_with_the_missing_seq() -> None:
    with pytest.raises(IncompleteJob) as error:
        run_job(CHUNKS, partial(poison, seq=7), WORKERS, retries=2)
    assert error.value.missing == (7,)


def test_fix_hung_worker_hits_the_deadline() -> None:
    started = time.monotonic()
    with pytest.raises(IncompleteJob) as error:
        run_job(CHUNKS, partial(slow, seq=2, seconds=3), WORKERS, timeout=0.5)
    assert time.monotonic() - started < 2.5
    assert 2 in error.value.missing
