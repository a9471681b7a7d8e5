"""A pool of job slots, and the in-process pool every level shares."""

from __future__ import annotations

import contextlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

__all__ = ["LocalSlots", "SlotPool", "Token", "within_budget"]


# --8<-- [start:pool]
@dataclass(eq=False)
class Token:
    """One job slot, held from `acquire` until `release`.

    Attributes:
        value: The byte read from a jobserver (write the same one back), or
            None for the implicit slot and for local slots.
    """

    value: bytes | None
    released: bool = field(default=False, repr=False)


class SlotPool(ABC):
    """A pool of job slots shared by every level of a build."""

    @abstractmethod
    def acquire(self, timeout: float | None = None) -> Token:
        """Wait for a free slot; raise `TimeoutError` after `timeout` seconds."""

    @abstractmethod
    def _give_back(self, token: Token) -> None: ...

    def release(self, token: Token) -> None:
        """Return a slot. Releasing one twice raises `ValueError`."""
        if token.released:
            raise ValueError("job slot released twice")
        token.released = True
        self._give_back(token)

    @contextlib.contextmanager
    def slot(self, timeout: float | None = None) -> Iterator[Token]:
        """Hold one slot for the `with` block, and return it however it ends."""
        token = self.acquire(timeout)
        try:
            yield token
        finally:
            self.release(token)


# --8<-- [end:pool]


# --8<-- [start:local]
class LocalSlots(SlotPool):
    """`size` slots inside one process: create once, pass down to every level."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a pool needs at least one slot, not {size}")
        self.size = size
        self._free = threading.BoundedSemaphore(size)

    def acquire(self, timeout: float | None = None) -> Token:
        if not self._free.acquire(timeout=-1 if timeout is None else timeout):
            raise TimeoutError(f"no job slot free after {timeout} s")
        return Token(None)

    def _give_back(self, token: Token) -> None:
        self._free.release()  # BoundedSemaphore: one release too many raises

    def __str__(self) -> str:
        return f"{self.size} local slot{'s' if self.size > 1 else ''}"


def within_budget(
    slots: SlotPool, action: Callable[[], None], timeout: float | None = None
) -> Callable[[], None]:
    """Wrap a leaf action so that it runs only while it holds a slot."""

    def run() -> None:
        with slots.slot(timeout):
            action()

    return run


# --8<-- [end:local]
