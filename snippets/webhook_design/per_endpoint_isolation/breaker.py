"""A circuit breaker per endpoint, whose permits carry the breaker's epoch."""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["CircuitBreaker", "Permit", "State"]


class State(enum.Enum):
    """The states of a `CircuitBreaker`."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


# --8<-- [start:permit]
@dataclass(frozen=True)
class Permit:
    """Leave to send one request, stamped with the breaker's epoch.

    The epoch changes whenever the breaker changes state, so the breaker can
    tell a result that belongs to its current state from one that was in
    flight when it opened.
    """

    epoch: int
    probe: bool = False


# --8<-- [end:permit]


# --8<-- [start:breaker]
class CircuitBreaker:
    """Stop calling an endpoint that keeps failing, and probe it later.

    Closed: requests go through; ``failure_threshold`` failures in a row open
    it. Open: nothing goes through until the cooldown ends. Half-open: exactly
    one probe goes through; success closes the breaker, failure opens it again
    with twice the cooldown (at most ``max_cooldown``). A ``Retry-After`` from
    the endpoint opens it at once for that long. A result whose permit is from
    an earlier state is ignored. The lock guards the state only; it is never
    held while a request is in flight.

    Args:
        failure_threshold: Consecutive failures that open the breaker.
        cooldown: Seconds the breaker stays open the first time.
        max_cooldown: The longest it stays open, ``Retry-After`` included.
        clock: Monotonic seconds; injectable for tests.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        cooldown: float = 30.0,
        max_cooldown: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold, self._base = failure_threshold, cooldown
        self._max, self._clock = max_cooldown, clock
        self._lock = threading.Lock()
        self._state, self._failures, self._epoch = State.CLOSED, 0, 0
        self._cooldown, self._open_until = cooldown, 0.0
        self._probing = False

    @property
    def state(self) -> State:
        """The current state; an expired cooldown still reads as open."""
        with self._lock:
            return self._state

    # --8<-- [end:breaker]

    # --8<-- [start:acquire]
    def acquire(self) -> Permit | float:
        """A `Permit` if a request may go now, else seconds to wait.

        Every permit must be handed back with `success`, `failure` or
        `release`.
        """
        with self._lock:
            now = self._clock()
            if self._state is State.OPEN:
                if now < self._open_until:
                    return self._open_until - now
                self._enter(State.HALF_OPEN)
            if self._state is State.HALF_OPEN:
                if self._probing:  # one probe at a time
                    return min(0.05, self._cooldown)
                self._probing = True
                return Permit(self._epoch, probe=True)
            return Permit(self._epoch)

    def _enter(self, state: State) -> None:
        """Change state; results of permits granted before are now stale."""
        self._state, self._epoch, self._probing = state, self._epoch + 1, False

    # --8<-- [end:acquire]

    # --8<-- [start:record]
    def release(self, permit: Permit) -> None:
        """Hand back a permit that was not used: nothing was sent."""
        with self._lock:
            if permit.probe and permit.epoch == self._epoch:
                self._probing = False

    def success(self, permit: Permit) -> None:
        """The endpoint answered: forget past failures; a probe closes it."""
        with self._lock:
            if permit.epoch != self._epoch:
                return  # sent before the breaker opened: old news
            if self._state is State.HALF_OPEN:
                self._enter(State.CLOSED)
                self._cooldown = self._base
            self._failures = 0

    def failure(self, permit: Permit, retry_after: float | None = None) -> None:
        """The endpoint failed; ``retry_after`` is its hint in seconds, if any."""
        with self._lock:
            if permit.epoch != self._epoch:
                return  # in flight when the breaker opened: already counted
            hint = 0.0 if retry_after is None else min(retry_after, self._max)
            if self._state is State.HALF_OPEN:  # the probe failed
                self._cooldown = min(self._cooldown * 2, self._max)
                self._open(max(self._cooldown, hint))
                return
            self._failures += 1
            if retry_after is not None:  # accelerated: trust the endpoint
                self._open(hint)
            elif self._failures >= self._threshold:
                self._open(self._cooldown)

    def _open(self, seconds: float) -> None:
        self._enter(State.OPEN)
        self._failures, self._open_until = 0, self._clock() + seconds

    # --8<-- [end:record]
