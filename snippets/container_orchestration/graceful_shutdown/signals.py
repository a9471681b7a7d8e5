"""Turn SIGTERM into an ordinary event, and count the work in flight."""

from __future__ import annotations

import queue
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from types import FrameType

__all__ = [
    "AsyncWork",
    "InFlight",
    "Log",
    "Work",
    "say",
    "stop_requests",
]


Log = Callable[[str], None]
Work = Callable[[str], str]
AsyncWork = Callable[[str], Awaitable[str]]

_print_lock = threading.Lock()


def say(line: str) -> None:
    """Write one log line to stdout at once, even from several threads."""
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


# --8<-- [start:signals]
def stop_requests(*signals: signal.Signals) -> queue.SimpleQueue[int]:
    """Turn each of `signals` into an item on a queue that the main thread reads.

    The handler only puts the signal number on a `queue.SimpleQueue`, whose
    ``put`` is reentrant: it cannot deadlock even if the signal interrupts the
    main thread inside the same queue. All shutdown work happens outside the
    handler, in ordinary code. Call this from the main thread.
    """
    received: queue.SimpleQueue[int] = queue.SimpleQueue()

    def handler(signum: int, frame: FrameType | None) -> None:
        received.put(signum)

    for sig in signals:
        signal.signal(sig, handler)
    return received


# --8<-- [end:signals]


# --8<-- [start:in-flight]
class InFlight:
    """A count of work in progress that you can wait on, with a deadline."""

    def __init__(self) -> None:
        self._count = 0
        self._changed = threading.Condition()

    def enter(self) -> None:
        """Count one more piece of work."""
        with self._changed:
            self._count += 1

    def leave(self) -> None:
        """Count one piece of work as finished (or abandoned)."""
        with self._changed:
            self._count -= 1
            self._changed.notify_all()

    @property
    def count(self) -> int:
        """How much work is in progress now."""
        with self._changed:
            return self._count

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is in flight; False if `timeout` seconds pass first."""
        with self._changed:
            return self._changed.wait_for(lambda: self._count == 0, max(timeout, 0.0))


# --8<-- [end:in-flight]
