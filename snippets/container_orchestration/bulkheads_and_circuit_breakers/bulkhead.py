"""A bulkhead per dependency: a cap on the calls in flight to each one.

`Gateway` is the broken version: one shared pool of worker threads for every
dependency. `Bulkhead` caps one dependency's calls and fails fast with
`BulkheadFull` when every slot is taken; `BulkheadGateway` puts one in front
of each dependency.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor

from .clients import (
    http_get,
)

__all__ = ["Bulkhead", "BulkheadFull", "BulkheadGateway", "DeadlineExceeded", "Gateway"]


# --8<-- [start:shared]
class DeadlineExceeded(TimeoutError):
    """The caller's deadline passed before the call finished."""


class Gateway:
    """Runs every outbound call on one shared pool of worker threads.

    This is the shape that breaks: a hanging dependency holds one worker per
    call until the socket timeout, and once it holds them all, calls to
    healthy dependencies sit in the queue until their deadline passes.
    """

    def __init__(self, workers: int, call_timeout: float) -> None:
        self.workers = workers
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="gateway")
        self._call_timeout = call_timeout

    def submit(self, dependency: str, url: str) -> Future[bytes]:
        """Start a call to `url` on the pool; return its future."""
        return self._pool.submit(http_get, url, self._call_timeout)

    def call(self, dependency: str, url: str, deadline: float) -> bytes:
        """Call `url`, waiting at most `deadline` seconds for the answer."""
        future = self.submit(dependency, url)
        try:
            return future.result(timeout=deadline)
        except TimeoutError:  # from result(): http_get wraps its own timeouts
            future.cancel()  # a queued call never runs; a running one times out
            raise DeadlineExceeded(f"{dependency}: over {deadline} s") from None

    def close(self) -> None:
        """Cancel queued calls and wait for running ones to finish."""
        self._pool.shutdown(wait=True, cancel_futures=True)


# --8<-- [end:shared]


class BulkheadFull(Exception):
    """Every slot of the dependency's bulkhead stayed taken: fail fast."""


# --8<-- [start:bulkhead]
class Bulkhead:
    """At most `max_concurrent` calls in flight to one dependency.

    Args:
        name: The dependency, for errors and metrics.
        max_concurrent: Slots: the most calls this dependency may hold.
        acquire_timeout: How long a call waits for a free slot before it
            fails with `BulkheadFull`. Keep it far below callers' deadlines.
    """

    def __init__(self, name: str, max_concurrent: int, acquire_timeout: float) -> None:
        self.name = name
        self.max_concurrent = max_concurrent
        self.rejected = 0
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._acquire_timeout = acquire_timeout
        self._count_lock = threading.Lock()

    def acquire(self) -> None:
        """Take a slot, or raise `BulkheadFull` after the acquire timeout."""
        if not self._slots.acquire(timeout=self._acquire_timeout):
            with self._count_lock:
                self.rejected += 1
            raise BulkheadFull(f"{self.name}: {self.max_concurrent} calls in flight")

    def release(self) -> None:
        """Give a slot back: exactly once per successful `acquire`."""
        self._slots.release()  # BoundedSemaphore raises on a double release

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a slot for the duration of a `with` block."""
        self.acquire()
        try:
            yield
        finally:
            self.release()


# --8<-- [end:bulkhead]


# --8<-- [start:gateway]
class BulkheadGateway(Gateway):
    """The same shared pool, with one bulkhead per dependency.

    The caller's thread takes the slot before the call enters the pool, and
    the slot comes back when the call ends or is cancelled. A rejected call
    never occupies a worker. If the bulkheads add up to the pool size, an
    admitted call never waits for a worker either.
    """

    def __init__(
        self, workers: int, call_timeout: float, bulkheads: Mapping[str, Bulkhead]
    ) -> None:
        super().__init__(workers, call_timeout)
        self.bulkheads = dict(bulkheads)

    def submit(self, dependency: str, url: str) -> Future[bytes]:
        """Take a slot of `dependency`'s bulkhead, then start the call."""
        bulkhead = self.bulkheads[dependency]  # every dependency needs one
        bulkhead.acquire()  # raises BulkheadFull after acquire_timeout
        try:
            future = super().submit(dependency, url)
        except BaseException:
            bulkhead.release()
            raise
        future.add_done_callback(lambda _: bulkhead.release())
        return future


# --8<-- [end:gateway]
