"""One endpoint's lane: its backlog, its retries, its workers and its breaker."""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from snippets.webhook_design.per_endpoint_isolation.breaker import (
    CircuitBreaker,
    Permit,
)
from snippets.webhook_design.retry_schedule import (
    Outcome,
    Response,
    RetryPolicy,
    classify,
    parse_retry_after,
    post,
)

__all__ = ["Delivery", "Endpoint", "Lane", "LaneStats", "ResultHook"]


@dataclass(frozen=True)
class Endpoint:
    """A subscriber's webhook URL, with a name for logs and metrics."""

    name: str
    url: str


@dataclass
class Delivery:
    """One event for one endpoint."""

    event_id: str
    body: bytes
    attempts: int = 0


ResultHook = Callable[[Endpoint, Delivery, Response], None]


@dataclass
class LaneStats:
    """What a lane has done so far."""

    delivered: int = 0
    failed_attempts: int = 0
    dead: list[tuple[str, str]] = field(default_factory=list)  # (event id, why)


# --8<-- [start:lane]
class Lane:
    """One endpoint's bulkhead: its backlog, its workers, its breaker.

    Args:
        endpoint: Where the deliveries go.
        max_in_flight: Concurrent requests to this endpoint, at most.
        max_backlog: Deliveries waiting, at most; `offer` refuses more.
        breaker: The endpoint's circuit breaker.
        timeout: Seconds per request.
        retry: When a failed delivery is tried again, and when it is dead.
        on_result: Called after every attempt, outside any lock.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        max_in_flight: int,
        max_backlog: int,
        breaker: CircuitBreaker,
        timeout: float,
        retry: RetryPolicy,
        on_result: ResultHook | None = None,
    ) -> None:
        self.endpoint, self.breaker = endpoint, breaker
        self.stats = LaneStats()
        self._max_backlog, self._timeout = max_backlog, timeout
        self._retry, self._on_result = retry, on_result
        self._rng = random.Random()
        self._backlog: deque[Delivery] = deque()  # new deliveries, in order
        self._later: list[tuple[float, int, Delivery]] = []  # (due, seq, delivery)
        self._seq = itertools.count()
        self._ready = threading.Condition()
        self._stop = threading.Event()
        self._disabled = False
        self._in_flight = 0
        self._workers = [
            threading.Thread(target=self._work, name=f"lane-{endpoint.name}-{n}")
            for n in range(max_in_flight)
        ]

    # --8<-- [end:lane]

    # --8<-- [start:offer]
    def offer(self, delivery: Delivery) -> bool:
        """Queue a delivery without waiting; ``False`` if it is dead-lettered."""
        with self._ready:
            if self._disabled or self._waiting() >= self._max_backlog:
                why = "endpoint disabled" if self._disabled else "backlog full"
                self.stats.dead.append((delivery.event_id, why))
                return False
            self._backlog.append(delivery)
            self._ready.notify()
            return True

    def _take(self, timeout: float) -> Delivery | None:
        """The next delivery: a retry that is due, else the oldest new one."""
        deadline = time.monotonic() + timeout
        with self._ready:
            while True:
                now = time.monotonic()
                if self._later and self._later[0][0] <= now:
                    delivery = heapq.heappop(self._later)[2]
                elif self._backlog:
                    delivery = self._backlog.popleft()
                elif now >= deadline or self._stop.is_set():
                    return None
                else:
                    due = self._later[0][0] if self._later else deadline
                    self._ready.wait(min(due, deadline) - now)
                    continue
                self._in_flight += 1
                return delivery

    # --8<-- [end:offer]

    def _waiting(self) -> int:
        return len(self._backlog) + len(self._later)

    @property
    def waiting(self) -> int:
        """Deliveries waiting, new or for a retry, not counting those in flight."""
        with self._ready:
            return self._waiting()

    @property
    def in_flight(self) -> int:
        """Requests to this endpoint in progress."""
        with self._ready:
            return self._in_flight

    # --8<-- [start:work]
    def _work(self) -> None:
        while not self._stop.is_set():
            permit = self.breaker.acquire()
            if not isinstance(permit, Permit):  # open: the backlog stays put
                self._stop.wait(min(permit, 1.0))
                continue
            delivery = self._take(timeout=0.1)
            if delivery is None:
                self.breaker.release(permit)
                continue
            response = self._deliver(delivery, permit)
            if self._on_result is not None:
                self._on_result(self.endpoint, delivery, response)

    def _deliver(self, delivery: Delivery, permit: Permit) -> Response:
        headers = {"webhook-id": delivery.event_id}
        response = post(self.endpoint.url, delivery.body, headers, self._timeout)
        delivery.attempts += 1
        outcome = classify(response.status, self._retry.permanent)
        hint = parse_retry_after(response.retry_after, time.time())
        if outcome is Outcome.RETRY:  # tell the breaker before anyone retries
            self.breaker.failure(permit, hint)
        else:
            self.breaker.success(permit)  # the endpoint answered
        with self._ready:
            self._in_flight -= 1
            self._record(delivery, outcome, response, hint)
        return response

    # --8<-- [end:work]

    # --8<-- [start:record-delivery]
    def _record(
        self,
        delivery: Delivery,
        outcome: Outcome,
        response: Response,
        hint: float | None,
    ) -> None:
        """Count the attempt; schedule a retry with backoff, or dead-letter it."""
        if outcome is Outcome.DELIVERED:
            self.stats.delivered += 1
        elif outcome is Outcome.REJECTED:
            self.stats.dead.append((delivery.event_id, response.summary))
        elif outcome is Outcome.GONE:
            self._disable(delivery)
        else:
            self.stats.failed_attempts += 1
            wait = self._retry.delay(delivery.attempts, self._rng, hint)
            if wait is None:
                self.stats.dead.append((delivery.event_id, "out of attempts"))
            else:  # the lane moves on; this one waits its own backoff
                due = time.monotonic() + wait
                heapq.heappush(self._later, (due, next(self._seq), delivery))
                self._ready.notify()

    # --8<-- [end:record-delivery]

    def _disable(self, delivery: Delivery) -> None:
        """410 Gone: dead-letter this delivery and the backlog; stop the workers."""
        self._disabled = True
        waiting = [*self._backlog, *(entry[2] for entry in sorted(self._later))]
        for dead in (delivery, *waiting):
            self.stats.dead.append((dead.event_id, "410 Gone"))
        self._backlog.clear()
        self._later.clear()
        self._stop.set()

    def start(self) -> None:
        """Start the lane's workers."""
        for worker in self._workers:
            worker.start()

    def stop(self) -> None:
        """Ask the workers to stop after their current request."""
        self._stop.set()
        with self._ready:
            self._ready.notify_all()

    def join(self, timeout: float) -> None:
        """Wait for the workers; a request in flight ends within its timeout."""
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            if worker.is_alive():
                worker.join(max(0.0, deadline - time.monotonic()))
