"""A virtual clock for the retry-schedule demos and tests.

It satisfies `snippets.webhook_design.retry_schedule.Clock`: waiting moves
time forward at once instead of blocking, so a schedule that spans days runs
in a second, and every run gives the same times.
"""

from __future__ import annotations

import threading

__all__ = ["VirtualClock"]


class VirtualClock:
    """A clock for tests and simulations: waiting moves time forward at once.

    Args:
        start: The initial time; 2026-01-01T00:00:00Z by default.
    """

    def __init__(self, start: float = 1_767_225_600.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        with self._lock:
            self._now += max(0.0, seconds)
        return stop.is_set()
