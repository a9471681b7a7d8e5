"""A worker pool that stops taking jobs, finishes what it holds, hands back the rest."""

from __future__ import annotations

import os
import queue
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Protocol

from .signals import InFlight, Log, say, stop_requests

__all__ = [
    "JobSource",
    "LineSource",
    "WorkerPool",
    "run_pool",
]


if sys.version_info >= (3, 13):
    _QUEUE_CLOSED: tuple[type[Exception], ...] = (queue.ShutDown,)
else:
    _QUEUE_CLOSED: tuple[type[Exception], ...] = ()


class WorkerPool:
    """Worker threads that run jobs, holding at most ``workers + prefetch`` at once.

    Job ids must be unique among the jobs the pool holds.

    Args:
        work: Runs one job; an exception hands the job back.
        ack: Called with a job once it is done.
        nack: Called with a job that is handed back for someone else to run.
        workers: Number of worker threads.
        prefetch: Jobs held in the buffer beyond the ones running.
    """

    def __init__(
        self,
        work: Callable[[str], None],
        ack: Callable[[str], None],
        nack: Callable[[str], None],
        workers: int,
        prefetch: int,
    ) -> None:
        self._work, self._ack, self._nack = work, ack, nack
        self._slots = threading.BoundedSemaphore(workers + prefetch)
        self._jobs: queue.Queue[str | None] = queue.Queue()  # None: stop (3.11/3.12)
        self._lock = threading.Lock()
        self._held: set[str] = set()  # submitted, neither acked nor handed back
        self._handed_back: set[str] = set()
        self._closed = False  # set by `stop`: `submit` hands jobs back from then on
        self.in_flight = InFlight()
        self._threads = [
            threading.Thread(target=self._worker, name=f"worker-{n}", daemon=True)
            for n in range(workers)
        ]

    def start(self) -> None:
        """Start the worker threads."""
        for thread in self._threads:
            thread.start()

    def reserve(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for room for one job (backpressure)."""
        return self._slots.acquire(timeout=timeout)

    def unreserve(self) -> None:
        """Give back a reservation that no job used."""
        self._slots.release()

    def submit(self, job: str) -> bool:
        """Queue a job. Call only after a successful `reserve`.

        Returns:
            False when `stop` has begun: the job is handed back at once, so a
            job fetched late is never left neither acked nor handed back.
        """
        with self._lock:
            if not self._closed:
                self._held.add(job)
                self.in_flight.enter()
                self._jobs.put(job)
                return True
        self._nack(job)
        self._slots.release()
        return False

    def hand_back(self, job: str) -> None:
        """Hand back a job that the pool will not run."""
        self._nack(job)

    # --8<-- [start:worker]
    def _worker(self) -> None:
        while True:
            try:
                job = self._jobs.get()
            except _QUEUE_CLOSED:  # 3.13+: the queue is shut down and empty
                return
            if job is None:  # 3.11/3.12: one stop marker per worker
                return
            with self._lock:
                skip = job in self._handed_back  # the deadline passed before it ran
            failed = False
            if not skip:
                try:
                    self._work(job)
                except Exception:
                    failed = True
            with self._lock:
                self._held.discard(job)
                late = job in self._handed_back  # handed back while it ran
            if not late:
                (self._nack if failed else self._ack)(job)
            self._slots.release()
            self.in_flight.leave()

    # --8<-- [end:worker]

    # --8<-- [start:stop]
    def stop(self, grace: float) -> list[str]:
        """Let the workers finish what the pool holds, for up to `grace` seconds.

        Returns:
            The jobs handed back (``nack``) because the deadline came first,
            whether they were running or had not started.
        """
        with self._lock:  # no `submit` can queue a job after the stop markers
            self._closed = True
            if sys.version_info >= (3, 13):
                self._jobs.shutdown()  # get() raises ShutDown once it is empty
            else:
                for _ in self._threads:
                    self._jobs.put(None)  # after every queued job: they run first
        if self.in_flight.wait_idle(grace):
            return []
        with self._lock:
            unfinished = sorted(self._held)
            self._handed_back.update(unfinished)  # a late finish is not acked
        for job in unfinished:
            self._nack(job)
        return unfinished

    # --8<-- [end:stop]


class JobSource(Protocol):
    """Where a pool's jobs come from: a broker consumer, or `LineSource`."""

    def fetch(self, timeout: float) -> str | None:
        """The next job, or None when none arrived within `timeout` seconds."""

    def unread(self) -> list[str]:
        """Jobs received from the broker but never fetched (to hand back)."""


class LineSource:
    """Job ids, one per line, read from a file descriptor.

    The demo's stand-in for a broker consumer: `fetch` waits at most `timeout`
    seconds, so the intake loop notices a stop request quickly.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = b""
        self._eof = False

    def fetch(self, timeout: float) -> str | None:
        """Return the next job id, or None if none arrived within `timeout`."""
        while b"\n" not in self._buffer:
            if self._eof:
                return None
            ready, _, _ = select.select([self._fd], [], [], timeout)
            if not ready:
                return None
            chunk = os.read(self._fd, 4096)
            self._eof = not chunk
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode().strip() or None

    def unread(self) -> list[str]:
        """Ids read from the descriptor but never fetched (hand them back too)."""
        lines = self._buffer.decode().split()
        self._buffer = b""
        return lines


# --8<-- [start:run-pool]
def run_pool(pool: WorkerPool, source: JobSource, grace: float, log: Log = say) -> int:
    """Take jobs from `source` until SIGTERM or SIGINT, then drain the pool.

    Returns:
        0 when every job taken was finished, 1 when some were handed back.
    """
    stop = stop_requests(signal.SIGTERM, signal.SIGINT)
    stopping = threading.Event()

    late: list[str] = []  # fetched after the pool stopped: handed back

    def intake() -> None:
        while not stopping.is_set():
            if not pool.reserve(timeout=0.1):  # the pool is full: take nothing
                continue
            job = source.fetch(timeout=0.1)
            if job is None:
                pool.unreserve()
            elif pool.submit(job):  # once fetched it is ours, even if stopping now
                log(f"took {job}")
            else:
                late.append(job)

    pool.start()
    taker = threading.Thread(target=intake, name="intake")
    log(f"taking jobs, pid {os.getpid()}")
    taker.start()
    signum = stop.get()
    deadline = time.monotonic() + grace
    stopping.set()  # 1. stop intake; a fetch in progress may still return a job
    taker.join(timeout=max(deadline - time.monotonic(), 0))
    held = pool.in_flight.count
    log(f"{signal.Signals(signum).name}: stopped taking jobs, draining {held} held")
    handed_back = pool.stop(deadline - time.monotonic())  # 2. drain, or hand back
    taker.join()  # still fetching at the deadline: `submit` now hands its job back
    handed_back += late
    for job in source.unread():  # read from the source but never taken
        pool.hand_back(job)
        handed_back.append(job)
    if not handed_back:
        log("drained, exiting")
        return 0
    log(f"deadline: handed back {len(handed_back)}")
    return 1


# --8<-- [end:run-pool]
