"""One call per key at a time; callers that arrive meanwhile share it."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["SingleFlight"]

T = TypeVar("T")


@dataclass
class _Call(Generic[T]):
    future: Future[T] = field(default_factory=Future)
    callers: int = 0


def _copy_of(error: BaseException) -> BaseException:
    """A new exception of the same type and arguments, without a traceback."""
    try:
        return copy.copy(error)
    except Exception:  # a constructor that does not accept its own args
        return RuntimeError(f"the shared call failed: {error!r}")


# --8<-- [start:single-flight]
class SingleFlight(Generic[T]):
    """One call per key at a time; callers that arrive meanwhile share it.

    The first caller for a key (the leader) runs the function. Callers that
    arrive while it runs get the same value, or each a copy of the leader's
    exception whose ``__cause__`` is the leader's exception. The key is
    free again as soon as the call ends: this removes duplicate work, it does
    not cache.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, _Call[T]] = {}

    def do(
        self, key: str, fn: Callable[[], T], timeout: float | None = None
    ) -> tuple[T, bool]:
        """Run or join the call for `key`; return ``(result, shared)``.

        Raises:
            TimeoutError: A follower waited longer than `timeout` seconds.
        """
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if call is None:
                call = self._calls[key] = _Call()
            call.callers += 1
        if not leader:
            error = call.future.exception(timeout)  # TimeoutError if it runs on
            if error is None:
                return call.future.result(), True
            # A fresh exception per follower, chained to the leader's: raising
            # the one shared object from many threads would interleave their
            # tracebacks on it.
            raise _copy_of(error) from error
        try:
            call.future.set_result(fn())
        except BaseException as error:
            call.future.set_exception(error)
            raise
        finally:
            with self._lock:
                del self._calls[key]
        return call.future.result(), False

    # --8<-- [end:single-flight]

    def callers(self, key: str) -> int:
        """How many callers share the call in flight for `key` (0 if none)."""
        with self._lock:
            call = self._calls.get(key)
            return 0 if call is None else call.callers
