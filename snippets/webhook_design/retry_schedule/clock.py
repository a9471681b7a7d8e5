"""Time as the dispatcher sees it: read the clock, and wait until told to stop."""

from __future__ import annotations

import threading
import time
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


# --8<-- [start:clock]
class Clock(Protocol):
    """Wall-clock time, and a wait that a stop event can cut short."""

    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        """Wait up to ``seconds``; return ``True`` if ``stop`` is set."""
        ...


class SystemClock:
    """The real clock. Waiting blocks, and ends early when ``stop`` is set."""

    def now(self) -> float:
        return time.time()

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        return stop.wait(max(0.0, seconds))


# --8<-- [end:clock]
