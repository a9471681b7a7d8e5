"""What both queues share: the closed error, the stop token, the run's counts."""

from __future__ import annotations

import asyncio
import enum
import queue
import sys
from dataclasses import dataclass

__all__ = ["Closed", "Stats"]


class Closed(Exception):
    """Raised by `put()` after `close()`, and by `get()` once closed and drained."""


class _Stop(enum.Enum):
    TOKEN = enum.auto()


_STOP = _Stop.TOKEN

if sys.version_info >= (3, 13):
    _SHUT_DOWN: tuple[type[Exception], ...] = (asyncio.QueueShutDown, queue.ShutDown)
else:
    _SHUT_DOWN = ()  # catches nothing: 3.11 and 3.12 use the sentinel instead


@dataclass
class Stats:
    """Counts from one run of a pipeline."""

    accepted: int = 0
    handled: int = 0
    failed: int = 0
    peak_depth: int = 0
    producer_waits: int = 0
    producer_blocked_s: float = 0.0
