"""A bounded priority queue in which waiting raises priority, so nothing starves."""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["AgingPriorityQueue", "Closed"]

T = TypeVar("T")


class Closed(Exception):
    """Raised by `put()` after `close()`, and by `get()` once closed and drained."""


@dataclass
class _Entry(Generic[T]):
    seq: int
    enqueued: float
    item: T


# --8<-- [start:aging-queue]
class AgingPriorityQueue(Generic[T]):
    """A thread-safe, bounded priority queue in which waiting raises priority.

    Level 0 is the most urgent. Within a level items are FIFO. An item moves
    up one level for every `age_every` units of `clock` it waits, so an item
    at level `p` competes as level 0 after `p * age_every` at most: nothing
    starves, however much urgent work keeps arriving.
    """

    def __init__(
        self,
        levels: int,
        age_every: float,
        *,
        maxsize: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._levels: list[deque[_Entry[T]]] = [deque() for _ in range(levels)]
        self._age_every, self._maxsize, self._clock = age_every, maxsize, clock
        self._size, self._closed, self._seq = 0, False, itertools.count()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)

    def put(self, item: T, priority: int, timeout: float | None = None) -> None:
        """Add `item` at level `priority`; wait while full (`queue.Full` on timeout)."""
        if not 0 <= priority < len(self._levels):
            raise ValueError(f"priority must be in 0..{len(self._levels) - 1}")
        with self._not_full:
            if not self._not_full.wait_for(
                lambda: self._closed or self._size < self._maxsize, timeout
            ):
                raise queue.Full
            if self._closed:
                raise Closed
            entry = _Entry(next(self._seq), self._clock(), item)
            self._levels[priority].append(entry)
            self._size += 1
            self._not_empty.notify()

    # --8<-- [end:aging-queue]
    # --8<-- [start:aging-get]
    def get(self, timeout: float | None = None) -> T:
        """Take the most urgent item after aging; ties go to the oldest."""
        with self._not_empty:
            if not self._not_empty.wait_for(
                lambda: self._size or self._closed, timeout
            ):
                raise queue.Empty
            if not self._size:
                raise Closed
            now, best, best_level = self._clock(), (len(self._levels), 0), 0
            for level, entries in enumerate(self._levels):
                if entries:  # the head is the oldest, so it has aged the most
                    aged = int((now - entries[0].enqueued) // self._age_every)
                    rank = (max(0, level - aged), entries[0].seq)
                    if rank < best:
                        best, best_level = rank, level
            self._size -= 1
            self._not_full.notify()
            return self._levels[best_level].popleft().item

    # --8<-- [end:aging-get]
    def close(self) -> None:
        """Refuse new items; `get()` drains what is queued, then raises `Closed`."""
        with self._lock:
            self._closed = True
            self._not_empty.notify_all()
            self._not_full.notify_all()
