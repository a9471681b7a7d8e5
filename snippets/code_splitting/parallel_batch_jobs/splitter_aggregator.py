"""Splitter, parallel workers and an Aggregator that checks completeness.

A job is split into numbered chunks; each carries ``(job_id, seq, total)``.
Worker processes transform the chunks, and the aggregator keys the results by
``seq``: it ignores duplicates, assembles in ``seq`` order, and refuses to
finish while a chunk is missing. Missing chunks are retried a bounded number
of times, then the job fails with the list of missing ``seq`` numbers.
"""

from __future__ import annotations

import logging
import multiprocessing.context
import os
import random
import signal
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

__all__ = [
    "Aggregator",
    "Chunk",
    "IncompleteJob",
    "Part",
    "run_job",
    "safe_context",
    "split",
    "stop_workers",
    "transform",
]

log = logging.getLogger(__name__)


# --8<-- [start:split]
@dataclass(frozen=True)
class Chunk:
    """One piece of a job: its position and how many pieces there are."""

    job_id: str
    seq: int
    total: int
    rows: tuple[str, ...]


@dataclass(frozen=True)
class Part:
    """A worker's result for one chunk, with the chunk's identity."""

    job_id: str
    seq: int
    total: int
    rows: tuple[str, ...]


def split(job_id: str, rows: Sequence[str], size: int) -> list[Chunk]:
    """Cut ``rows`` into chunks of ``size`` rows, numbered from 0."""
    if size < 1:
        raise ValueError("size must be at least 1")
    starts = range(0, len(rows), size)
    return [
        Chunk(job_id, seq, len(starts), tuple(rows[start : start + size]))
        for seq, start in enumerate(starts)
    ]


def transform(chunk: Chunk) -> Part:
    """The work itself: here, number and upper-case every row."""
    rows = tuple(f"{chunk.seq}:{row.upper()}" for row in chunk.rows)
    return Part(chunk.job_id, chunk.seq, chunk.total, rows)


# --8<-- [end:split]


def safe_context() -> multiprocessing.context.BaseContext:
    """``forkserver`` where it exists: ``fork`` from a threaded process can hang."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("forkserver")
    return multiprocessing.get_context("spawn")


# --8<-- [start:naive]
def naive_aggregate(parts: Iterable[Part]) -> list[str]:
    """Concatenate results in arrival order: no ids, no count, no dedupe."""
    rows: list[str] = []
    for part in parts:
        rows.extend(part.rows)
    return rows


def naive_run(
    chunks: Sequence[Chunk], worker: Callable[[Chunk], Part], workers: int
) -> list[str]:
    """Collect whatever came back; log and skip the failures."""
    parts = []
    with ProcessPoolExecutor(workers, mp_context=safe_context()) as pool:
        futures = [pool.submit(worker, chunk) for chunk in chunks]
        for future in as_completed(futures):
            try:
                parts.append(future.result())
            except Exception as error:  # the silent partial success
                log.warning("chunk failed, skipping: %r", error)
    return naive_aggregate(parts)


# --8<-- [end:naive]


# --8<-- [start:aggregator]
class IncompleteJob(Exception):
    """The job cannot finish: some chunks never produced a result."""

    def __init__(self, job_id: str, missing: Sequence[int]) -> None:
        super().__init__(f"job {job_id}: missing chunks {list(missing)}")
        self.missing = tuple(missing)


class Aggregator:
    """Collects the parts of one job by ``seq``; complete only with all of them."""

    def __init__(self, job_id: str, total: int) -> None:
        self.job_id = job_id
        self.total = total
        self.duplicates = 0
        self._parts: dict[int, Part] = {}

    def add(self, part: Part) -> bool:
        """Store a part. Returns False for a duplicate (ignored)."""
        if part.job_id != self.job_id or part.total != self.total:
            raise ValueError(f"part {part.seq} belongs to another job")
        if not 0 <= part.seq < self.total:
            raise ValueError(f"seq {part.seq} out of range 0..{self.total - 1}")
        if part.seq in self._parts:
            self.duplicates += 1
            return False
        self._parts[part.seq] = part
        return True

    def missing(self) -> list[int]:
        """The ``seq`` numbers not received yet, in order."""
        return [seq for seq in range(self.total) if seq not in self._parts]

    def result(self) -> list[str]:
        """All rows in ``seq`` order, or ``IncompleteJob`` naming the gaps."""
        if missing := self.missing():
            raise IncompleteJob(self.job_id, missing)
        return [row for seq in range(self.total) for row in self._parts[seq].rows]


# --8<-- [end:aggregator]


# --8<-- [start:run]
def run_job(
    chunks: Sequence[Chunk],
    worker: Callable[[Chunk], Part],
    workers: int,
    retries: int = 2,
    timeout: float = 60.0,
    mp_context: multiprocessing.context.BaseContext | None = None,
) -> list[str]:
    """Process ``chunks`` in a process pool; retry missing ones, then fail.

    A worker killed from outside breaks the whole pool
    (``BrokenProcessPool``): every chunk still in flight is lost with it, so
    each round starts a fresh pool for the chunks that are still missing.

    Raises:
        IncompleteJob: Chunks are still missing after ``retries`` extra rounds
            or after ``timeout`` seconds.
    """
    if not chunks:
        return []
    aggregator = Aggregator(chunks[0].job_id, chunks[0].total)
    deadline = time.monotonic() + timeout
    for _ in range(retries + 1):
        todo = [chunks[seq] for seq in aggregator.missing()]
        if not todo:
            break
        pool = ProcessPoolExecutor(
            min(workers, len(todo)), mp_context=mp_context or safe_context()
        )
        try:
            futures = [pool.submit(worker, chunk) for chunk in todo]
            remaining = max(0.0, deadline - time.monotonic())
            for future in as_completed(futures, timeout=remaining):
                try:
                    aggregator.add(future.result())
                except BrokenProcessPool:
                    log.warning("a worker died; its pool's chunks will be retried")
                except Exception as error:
                    log.warning("chunk failed: %r", error)
        except TimeoutError:
            break  # report what is missing instead of waiting forever
        finally:
            stop_workers(pool)  # a hung worker must not outlive its round
    return aggregator.result()


# --8<-- [end:run]


# --8<-- [start:stop]
def stop_workers(pool: ProcessPoolExecutor, timeout: float = 10.0) -> None:
    """Shut ``pool`` down and kill its workers, even one stuck in a chunk.

    ``shutdown(wait=False)`` only stops handing out work: a worker blocked in
    a chunk keeps running, and one leaks per round. Python 3.14 has
    ``kill_workers()``; before it, kill the processes of the (private)
    ``_processes`` map, then reap them.
    """
    kill_workers = getattr(pool, "kill_workers", None)
    if kill_workers is not None:  # Python 3.14+
        kill_workers()
        return
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.kill()
    for process in processes:
        process.join(timeout)


# --8<-- [end:stop]


# --8<-- [start:faults]
def crash_once(chunk: Chunk, seq: int, marker: str) -> Part:
    """Kill this worker process with SIGKILL the first time it sees ``seq``."""
    if chunk.seq == seq:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            pass  # crashed before: this time, work normally
        else:
            os.kill(os.getpid(), signal.SIGKILL)
    return transform(chunk)


def poison(chunk: Chunk, seq: int) -> Part:
    """Fail on ``seq`` every time: a chunk no retry can fix."""
    if chunk.seq == seq:
        raise ValueError(f"chunk {seq} cannot be processed")
    return transform(chunk)


# --8<-- [end:faults]


def describe(rows: list[str], serial: list[str]) -> str:
    """Row count and whether the rows equal the serial result, in order."""
    return f"{len(rows)}/{len(serial)} rows, equals serial result: {rows == serial}"


# --8<-- [start:demo]
def demo(marker_dir: str, workers: int = 4) -> list[str]:
    """Every scenario of the page, one line each."""
    from functools import partial

    chunks = split("job-1", [f"row {i:02}" for i in range(40)], size=4)
    serial = [row for chunk in chunks for row in transform(chunk).rows]
    arrivals = [transform(chunk) for chunk in chunks]
    random.Random(7).shuffle(arrivals)
    arrivals.append(transform(chunks[3]))  # chunk 3 delivered twice
    aggregator = Aggregator("job-1", len(chunks))
    for part in arrivals:
        aggregator.add(part)
    crash = partial(crash_once, seq=7, marker=f"{marker_dir}/naive")
    try:
        lost, raised = naive_run(chunks, crash, workers), "no"
    except Exception as error:  # what the caller would see, if anything
        lost, raised = [], type(error).__name__
    chunk7 = transform(chunks[7]).rows
    lines = [
        f"naive, shuffled + duplicate: {describe(naive_aggregate(arrivals), serial)}",
        f"naive, worker 7 killed: chunk 7 lost: {not set(chunk7) & set(lost)}, "
        f"error raised: {raised}",
        f"aggregator, shuffled + duplicate: {describe(aggregator.result(), serial)}, "
        f"duplicates ignored: {aggregator.duplicates}",
    ]
    crash = partial(crash_once, seq=7, marker=f"{marker_dir}/pattern")
    lines.append(
        f"run_job, worker 7 killed: {describe(run_job(chunks, crash, workers), serial)}"
    )
    try:
        run_job(chunks, partial(poison, seq=7), workers, retries=1)
    except IncompleteJob as error:
        lines.append(f"run_job, chunk 7 always fails: IncompleteJob {error.missing}")
    return lines


# --8<-- [end:demo]


def show_demo() -> list[str]:
    """Every scenario of the section, in a scratch directory for the markers."""
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        return demo(tmp)
