"""Tests for snippets/code_splitting/parallel_batch_jobs/.

Splitter and aggregator: workers are real processes; the crash is a real
SIGKILL that a worker sends itself on chunk 7 (once, recorded in a marker
file), which breaks the pool. Bounded fan-out: a real loopback HTTP origin with
a concurrency cap. Chunk sizes: real process pools, counted by how often the
parent pickles the worker function (once per task sent). Lazy map: real
executors, counted by how many items they pulled from a generator.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import platform
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from multiprocessing.pool import Pool
from pathlib import Path
from typing import TypeVar

import pytest

from snippets.code_splitting.parallel_batch_jobs.batching import (
    batched_recipe,
    batches,
)
from snippets.code_splitting.parallel_batch_jobs.bounded_fan_out import (
    load_all,
    load_all_threaded,
    load_all_unbounded,
)
from snippets.code_splitting.parallel_batch_jobs.chunksize import (
    makespan,
    map_in_chunks,
    pick_chunksize,
    pool_map_chunksize,
)
from snippets.code_splitting.parallel_batch_jobs.lazy_map import map_bounded
from snippets.code_splitting.parallel_batch_jobs.splitter_aggregator import (
    Aggregator,
    Chunk,
    IncompleteJob,
    Part,
    crash_once,
    naive_aggregate,
    naive_run,
    poison,
    run_job,
    safe_context,
    split,
    transform,
)
from snippets.code_splitting.single_flight_loader import (
    PartLoadError,
    fetch_part,
    fetch_part_blocking,
)
from snippets.support.code_splitting_batches import (
    CountedPickles,
    CountingThreadPool,
    Pulled,
    cost_after_barrier,
    install_barrier,
    pid_after_barrier,
    work,
)
from snippets.support.code_splitting_origin import PartServer
from tests.code_splitting.conftest import running_part_server
from tools.errors import ErrorRecorder

T = TypeVar("T")

# --------------------------------------------------------------------------- #
# Splitter and aggregator
# --------------------------------------------------------------------------- #

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


# --------------------------------------------------------------------------- #
# Bounded fan-out
# --------------------------------------------------------------------------- #

PARTS = 200
CAP = 30  # the origin serves this many requests at once, then answers 503
WAIT = 10.0
LOAD_WAIT = 60.0  # the whole load of 200 parts, on a machine under load
NAMES = [f"{i:03d}" for i in range(PARTS)]
EXPECTED = [f"part {name}" for name in NAMES]


@pytest.fixture
def server() -> Iterator[PartServer]:
    with running_part_server(max_active=CAP) as srv:
        yield srv


def held_until(server: PartServer, active: int, start: Callable[[], T]) -> T:
    """Hold every answer until ``active`` requests are open at once, then run."""
    server.gate.clear()
    box: list[T] = []
    worker = threading.Thread(target=lambda: box.append(start()))
    worker.start()
    server.wait_until(lambda s: s.active == active, WAIT)
    server.gate.set()
    worker.join(timeout=LOAD_WAIT)
    assert box, "the load did not finish"
    return box[0]


def run(coro: Callable[[], Awaitable[T]]) -> Callable[[], T]:
    async def main() -> T:
        return await coro()

    return lambda: asyncio.run(main())


def test_unbounded_fan_out_exceeds_the_origin_limit(server: PartServer) -> None:
    fetch = partial(fetch_part, server.url)
    results = held_until(server, PARTS, run(lambda: load_all_unbounded(NAMES, fetch)))
    failed = [r for r in results if isinstance(r, PartLoadError)]
    print(f"unbounded: peak={server.peak} rejected={server.rejected}")
    assert server.peak == PARTS  # one open connection per part
    assert server.rejected == PARTS - CAP
    assert len(failed) == PARTS - CAP


def test_bounded_fan_out_stays_within_budget(server: PartServer) -> None:
    fetch = partial(fetch_part, server.url)
    results = held_until(server, CAP, run(lambda: load_all(NAMES, fetch, CAP)))
    assert results == EXPECTED  # complete and in name order
    assert server.peak == CAP
    assert server.rejected == 0
    assert sum(server.requests.values()) == PARTS


def test_threaded_fan_out_stays_within_budget(server: PartServer) -> None:
    fetch = partial(fetch_part_blocking, server.url)
    results = held_until(
        server, CAP, lambda: load_all_threaded(NAMES, fetch, CAP, timeout=LOAD_WAIT)
    )
    assert results == EXPECTED
    assert server.peak == CAP
    assert server.rejected == 0


def test_first_failure_cancels_the_rest(server: PartServer) -> None:
    server.fail_next["/parts/005"] = 1
    fetch = partial(fetch_part, server.url)
    with pytest.raises(ExceptionGroup) as caught:
        asyncio.run(load_all(NAMES, fetch, budget=5))
    assert caught.group_contains(PartLoadError)
    assert sum(server.requests.values()) < PARTS  # later parts never requested


def test_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="budget"):
        asyncio.run(load_all(NAMES, fetch_part_name, budget=0))
    with pytest.raises(ValueError, match="budget"):
        load_all_threaded(NAMES, str, budget=0)


async def fetch_part_name(name: str) -> str:
    return name


def test_a_killed_worker_fails_its_future_with_broken_process_pool(
    tmp_path: Path, error_record: ErrorRecorder
) -> None:
    crash = partial(crash_once, seq=7, marker=str(tmp_path / "crashed"))
    with ProcessPoolExecutor(1, mp_context=safe_context()) as pool:
        future = pool.submit(crash, CHUNKS[7])
        with pytest.raises(BrokenProcessPool) as caught:
            future.result(timeout=WAIT)
    error_record(
        caught.value,
        id="broken-process-pool",
        component="CPython",
        version=platform.python_version(),
        section="see-it-break",
    )


# --------------------------------------------------------------------------- #
# Chunk sizes: tasks counted by how often the parent pickles the function
# --------------------------------------------------------------------------- #

ITEMS = 1000


@pytest.fixture(scope="module")
def process_pool() -> Iterator[Pool]:
    with safe_context().Pool(WORKERS) as pool:
        yield pool


def tasks_of(run: Callable[[CountedPickles], object]) -> int:
    counter = CountedPickles()
    run(counter)
    return counter.count


@pytest.mark.parametrize("items", [1, 15, 16, 17, 100, ITEMS])
def test_pool_map_default_is_about_four_chunks_per_worker(
    process_pool: Pool, items: int
) -> None:
    chunksize = pool_map_chunksize(items, WORKERS)
    sent = tasks_of(lambda f: process_pool.map(f, range(items)))
    assert sent == -(-items // chunksize)  # one task per chunk
    assert sent <= 4 * WORKERS
    assert pool_map_chunksize(ITEMS, WORKERS) == 63  # divmod(1000, 16) + 1


def test_break_imap_and_executor_map_send_one_task_per_item(
    process_pool: Pool,
) -> None:
    assert tasks_of(lambda f: list(process_pool.imap(f, range(ITEMS)))) == ITEMS
    unordered = tasks_of(lambda f: list(process_pool.imap_unordered(f, range(ITEMS))))
    assert unordered == ITEMS
    with ProcessPoolExecutor(WORKERS, mp_context=safe_context()) as pool:
        assert tasks_of(lambda f: list(pool.map(f, range(ITEMS)))) == ITEMS


def test_fix_a_computed_chunksize_sends_few_tasks_in_order() -> None:
    with ProcessPoolExecutor(WORKERS, mp_context=safe_context()) as pool:
        results: list[int] = []
        sent = tasks_of(
            lambda f: results.extend(map_in_chunks(pool, f, range(ITEMS), WORKERS))
        )
    assert sent == 16
    assert results == [work(i) for i in range(ITEMS)]


def test_thread_pool_ignores_chunksize() -> None:
    with CountingThreadPool(WORKERS) as pool:
        results = list(pool.map(work, range(ITEMS), chunksize=63))
    assert pool.submitted == ITEMS
    assert results == [work(i) for i in range(ITEMS)]


def test_chunksize_below_one_is_refused(
    process_pool: Pool, error_record: ErrorRecorder
) -> None:
    with (
        ProcessPoolExecutor(1, mp_context=safe_context()) as pool,
        pytest.raises(ValueError) as executor_error,
    ):
        pool.map(work, range(3), chunksize=0)
    with pytest.raises(ValueError) as pool_error:
        process_pool.imap(work, range(3), chunksize=0)
    version = platform.python_version()
    error_record(
        executor_error.value,
        id="executor-chunksize",
        component="CPython",
        version=version,
        section="chunksize",
    )
    error_record(
        pool_error.value,
        id="pool-chunksize",
        component="CPython",
        version=version,
        section="chunksize",
    )
    with pytest.raises(ValueError):
        pick_chunksize(10, 0)


def pids_per_plan(items: list[int], chunksize: int, chunks: int) -> list[int]:
    """Worker pids per item; each chunk of the plan waits for the others."""
    context = safe_context()
    with context.Pool(
        WORKERS, initializer=install_barrier, initargs=(context.Barrier(chunks),)
    ) as pool:
        return pool.map(
            partial(pid_after_barrier, chunksize=chunksize), items, chunksize
        )


def test_break_fewer_chunks_than_workers_leaves_workers_idle() -> None:
    assert len(set(pids_per_plan(list(range(8)), 4, chunks=2))) == 2  # 2 of 4 idle
    assert len(set(pids_per_plan(list(range(ITEMS)), ITEMS, chunks=1))) == 1


def test_break_large_chunks_give_one_worker_every_slow_item() -> None:
    costs = [10] * 10 + [1] * 30
    context = safe_context()
    with context.Pool(
        WORKERS, initializer=install_barrier, initargs=(context.Barrier(4),)
    ) as pool:
        done = pool.map(
            partial(cost_after_barrier, chunksize=10), list(enumerate(costs)), 10
        )
    slow = Counter(pid for pid, cost in done if cost > 1)
    units = Counter[int]()
    for pid, cost in done:
        units[pid] += cost
    assert list(slow.values()) == [10]  # one worker has all ten
    assert sorted(units.values()) == [10, 10, 10, 100]
    assert makespan(costs, 10, WORKERS) == (100, 0)


def test_fix_small_chunks_balance_the_replayed_plan() -> None:
    costs = [10] * 10 + [1] * 30
    default = pool_map_chunksize(len(costs), WORKERS)
    assert default == 3
    assert makespan(costs, default, WORKERS)[0] == 33  # the ideal: ceil(130 / 4)
    assert makespan(costs, 1, WORKERS)[0] == 33
    assert makespan(costs, 20, WORKERS)[0] == 110
    assert makespan([5, 1, 1, 1], 1, 2) == (5, 0)
    assert makespan([1, 1, 1, 5], 1, 2) == (6, 1)


# --------------------------------------------------------------------------- #
# itertools.batched and its recipe
# --------------------------------------------------------------------------- #

# The standard batched where it exists: Any to the type checker, which checks
# this file as Python 3.11.
std_batched = getattr(itertools, "batched", None)


def test_batches_match_the_recipe_and_the_standard_one() -> None:
    expected = [("A", "B", "C"), ("D", "E", "F"), ("G",)]
    assert list(batches("ABCDEFG", 3)) == expected
    assert list(batched_recipe("ABCDEFG", 3)) == expected
    if std_batched is not None:
        assert list(std_batched("ABCDEFG", 3)) == expected
    assert list(batches("", 3)) == []
    with pytest.raises(ValueError):
        list(batches("ABC", 0))
    with pytest.raises(ValueError):
        list(batched_recipe("ABC", 0))


def test_batches_are_lazy() -> None:
    source = Pulled(iter(range(100)))
    found = batches(source, 3)
    assert next(found) == (0, 1, 2)
    assert source.count == 3


def test_strict_batches_refuse_a_short_last_batch() -> None:
    found = batches("ABCDEFG", 3, strict=True)
    assert next(found) == ("A", "B", "C")
    assert next(found) == ("D", "E", "F")
    with pytest.raises(ValueError, match=r"^batched\(\): incomplete batch$"):
        next(found)
    assert list(batches("ABCDEF", 3, strict=True)) == [("A", "B", "C"), ("D", "E", "F")]


def test_what_each_python_says_to_batched(error_record: ErrorRecorder) -> None:
    """3.11 has no batched, 3.12 has no strict=, 3.13 raises on a short batch."""
    caught: pytest.ExceptionInfo[Exception]
    if sys.version_info < (3, 12):
        with pytest.raises(AttributeError) as caught:
            itertools.batched  # type: ignore[attr-defined]  # noqa: B018
        record_id = "no-itertools-batched"
    elif sys.version_info < (3, 13):
        assert std_batched is not None
        with pytest.raises(TypeError) as caught:
            std_batched("ABCDEFG", 3, strict=True)
        record_id = "batched-no-strict"
    else:
        assert std_batched is not None
        with pytest.raises(ValueError) as caught:
            list(std_batched("ABCDEFG", 3, strict=True))
        assert str(caught.value) == "batched(): incomplete batch"  # as batches says
        record_id = "batched-incomplete"
    error_record(
        caught.value,
        id=record_id,
        component="CPython",
        version=platform.python_version(),
        section="batched",
    )


# --------------------------------------------------------------------------- #
# Executor.map reads its whole input; map_bounded does not
# --------------------------------------------------------------------------- #


def test_break_executor_map_pulls_every_item_before_the_first_result() -> None:
    with ThreadPoolExecutor(2) as pool:
        source = Pulled(iter(range(ITEMS)))
        results = pool.map(work, source)
        assert source.count == ITEMS  # before any result was asked for
        assert list(results) == [work(i) for i in range(ITEMS)]


def test_break_executor_map_never_returns_on_an_endless_input() -> None:
    with ThreadPoolExecutor(2) as pool:
        endless = Pulled(limit=ITEMS)
        with pytest.raises(RuntimeError, match="no result was consumed"):
            pool.map(work, endless)
    assert endless.count == ITEMS


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="buffersize= is 3.14+")
def test_executor_map_has_no_buffersize_before_3_14(
    error_record: ErrorRecorder,
) -> None:
    with ThreadPoolExecutor(1) as pool, pytest.raises(TypeError) as caught:
        pool.map(work, range(3), buffersize=2)  # type: ignore[call-arg]
    error_record(
        caught.value,
        id="map-no-buffersize",
        component="CPython",
        version=platform.python_version(),
        section="map-ahead",
    )


def test_fix_map_bounded_pulls_as_it_goes() -> None:
    with ThreadPoolExecutor(2) as pool:
        source = Pulled(iter(range(ITEMS)))
        results = map_bounded(pool, work, source, 8)
        assert source.count == 0  # nothing before the first next()
        assert next(results) == 0
        assert source.count == 8
        assert next(results) == 1
        assert source.count == 9  # one more per result taken
        assert list(results) == [work(i) for i in range(2, ITEMS)]
        endless = Pulled(limit=ITEMS)
        taken = list(itertools.islice(map_bounded(pool, work, endless, 8), 20))
    assert taken == [work(i) for i in range(20)]
    assert endless.count == 27


def test_map_bounded_cancels_what_has_not_started() -> None:
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def blocking(item: int) -> int:
        calls.append(item)
        if item == 1:
            started.set()
            release.wait(WAIT)
        return item

    pool = ThreadPoolExecutor(1)
    try:
        results = map_bounded(pool, blocking, range(100), 10)
        assert next(results) == 0
        assert started.wait(WAIT)  # the one thread is busy with item 1
        results.close()  # the caller stops: items 2..9 are cancelled
    finally:
        release.set()
        pool.shutdown(wait=True)
    assert calls == [0, 1]


def test_map_bounded_raises_an_item_error_in_order() -> None:
    def fails_on_three(item: int) -> int:
        if item == 3:
            raise KeyError(item)
        return item

    seen: list[int] = []
    with ThreadPoolExecutor(2) as pool:
        with pytest.raises(KeyError):
            for result in map_bounded(pool, fails_on_three, range(10), 4):
                seen.append(result)
        with pytest.raises(ValueError, match="buffersize"):
            next(map_bounded(pool, work, range(3), 0))
    assert seen == [0, 1, 2]


def test_map_bounded_with_worker_processes() -> None:
    with ProcessPoolExecutor(2, mp_context=safe_context()) as pool:
        results = list(map_bounded(pool, work, range(50), 4, timeout=WAIT))
    assert results == [work(i) for i in range(50)]
