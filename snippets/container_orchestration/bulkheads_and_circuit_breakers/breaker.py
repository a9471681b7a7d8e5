"""A circuit breaker: stop calling a failing dependency, then try it once.

`CircuitBreaker` opens after consecutive failures, fails fast while open, and
after a cool-down lets exactly one trial call through. `retry` backs off
between attempts and stops at an open breaker.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .clients import (
    DependencyError,
)

__all__ = [
    "DEPENDENCY_FAILURES",
    "CircuitBreaker",
    "CircuitOpenError",
    "State",
    "retry",
]

T = TypeVar("T")


class State(enum.Enum):
    """The three states of a circuit breaker."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitOpenError(Exception):
    """The breaker is open, or its one trial call is in flight: fail fast."""


# A deadline miss counts too: behind a bulkhead a call never waits for a
# worker, so missing the deadline means the dependency was slow.
DEPENDENCY_FAILURES: tuple[type[BaseException], ...] = (DependencyError, TimeoutError)


# --8<-- [start:breaker]
class CircuitBreaker:
    """Closed, Open after consecutive failures, Half-Open after a cool-down.

    In Half-Open one trial call goes through and every other caller fails
    fast; the trial's outcome closes the breaker or opens it again. A failure
    with `retry_after` (a 429 or 503 with `Retry-After`) opens it at once, for
    at least that long. The lock guards the state, never a call.

    Args:
        name: The dependency, for errors and events.
        failure_threshold: Consecutive failures that open the breaker.
        reset_timeout: Seconds to stay open before the trial call.
        failure_types: What counts as the dependency failing. Other
            exceptions (a bulkhead rejection, a cancelled caller) count
            neither as a failure nor as a success.
        clock: Monotonic seconds; inject a manual clock in tests.
        on_change: Called as `on_change(name, old, new)` after each change,
            outside the lock.
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        failure_types: tuple[type[BaseException], ...] = DEPENDENCY_FAILURES,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, State, State], None] | None = None,
    ) -> None:
        self.name = name
        self._threshold = failure_threshold
        self._reset_timeout = reset_timeout
        self._failure_types = failure_types
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._state = State.CLOSED
        self._failures = 0  # consecutive, while closed
        self._open_until = 0.0
        self._trial_running = False
        self._events: list[tuple[State, State]] = []

    # --8<-- [end:breaker]

    # --8<-- [start:call]
    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` through the breaker, or raise `CircuitOpenError` at once."""
        trial = self._admit()
        try:
            result = fn()
        except self._failure_types as error:
            self._record(trial, ok=False, error=error)
            raise
        except BaseException:
            self._abandon(trial)  # not the dependency's fault: count nothing
            raise
        self._record(trial, ok=True)
        return result

    def _admit(self) -> bool:
        """Let the call through (True when it is the trial call) or raise."""
        with self._lock:
            now = self._clock()
            if self._state is State.OPEN and now >= self._open_until:
                self._move(State.HALF_OPEN)
            admitted = trial = False
            if self._state is State.CLOSED:
                admitted = True
            elif self._state is State.HALF_OPEN and not self._trial_running:
                self._trial_running = True  # this caller makes the trial call
                admitted = trial = True
            wait_s = max(0.0, self._open_until - now)
        self._notify()
        if not admitted:
            raise CircuitOpenError(f"{self.name}: open, trial in {wait_s:.1f} s")
        return trial

    # --8<-- [end:call]

    # --8<-- [start:acall]
    async def acall(self, fn: Callable[[], Awaitable[T]]) -> T:
        """The asyncio `call`: the lock is taken only between awaits."""
        trial = self._admit()
        try:
            result = await fn()
        except self._failure_types as error:
            self._record(trial, ok=False, error=error)
            raise
        except BaseException:  # CancelledError too: the caller left, no verdict
            self._abandon(trial)
            raise
        self._record(trial, ok=True)
        return result

    # --8<-- [end:acall]

    # --8<-- [start:record]
    def _record(
        self, trial: bool, ok: bool, error: BaseException | None = None
    ) -> None:
        """Count the outcome of an admitted call and change state if due."""
        retry_after: float | None = getattr(error, "retry_after", None)
        with self._lock:
            if trial:
                self._trial_running = False
            if ok and trial:
                self._move(State.CLOSED)
            if ok and self._state is State.CLOSED:
                self._failures = 0
            if not ok and (trial or self._state is State.CLOSED):
                self._failures += 1  # (a late failure while open changes nothing)
                hinted = retry_after is not None  # a 429 or 503 with Retry-After
                if trial or hinted or self._failures >= self._threshold:
                    self._open(max(self._reset_timeout, retry_after or 0.0))
        self._notify()

    def _open(self, cool_down: float) -> None:
        """Trip the breaker for `cool_down` seconds (lock held)."""
        self._open_until = self._clock() + cool_down
        self._failures = 0
        self._move(State.OPEN)

    # --8<-- [end:record]

    # --8<-- [start:events]
    def _abandon(self, trial: bool) -> None:
        """A call ended without a verdict; a trial slot goes to the next caller."""
        if trial:
            with self._lock:
                self._trial_running = False

    def _move(self, new: State) -> None:
        """Change state (lock held); the event is delivered after the lock."""
        if new is not self._state:
            self._events.append((self._state, new))
            self._state = new

    def _notify(self) -> None:
        """Deliver pending state changes without holding the lock."""
        with self._lock:
            events, self._events = self._events, []
        for old, new in events:
            if self._on_change is not None:
                self._on_change(self.name, old, new)

    # --8<-- [end:events]

    @property
    def state(self) -> State:
        """The current state; `HALF_OPEN` once the cool-down has passed."""
        with self._lock:
            if self._state is State.OPEN and self._clock() >= self._open_until:
                return State.HALF_OPEN  # the next call will be the trial
            return self._state


# --8<-- [start:retry]
def retry(
    fn: Callable[[], T],
    *,
    attempts: int,
    delay: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call `fn` up to `attempts` times, doubling `delay` after each failure.

    Only `DependencyError` is retried. `CircuitOpenError` ends the loop at
    once: the breaker has decided the fault is not transient.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for attempt in range(1, attempts):
        try:
            return fn()
        except DependencyError:
            sleep(delay * 2 ** (attempt - 1))
    return fn()  # the last attempt's error reaches the caller


# --8<-- [end:retry]
