"""Per-endpoint isolation for webhook fan-out: lanes, bounds and breakers.

One event goes to every subscribed endpoint. If all deliveries share one queue
and one set of workers, an endpoint that hangs holds the workers, and every
other subscriber waits behind it: head-of-line blocking. Here each endpoint
gets a lane of its own:

* a bounded backlog that `FanOutSender.publish` never waits for;
* at most ``max_in_flight`` requests to that endpoint at a time;
* a backoff per delivery: a failed delivery waits its own jittered delay while
  the lane sends the others;
* a `CircuitBreaker` that stops sending after repeated failures, opens at once
  when the endpoint sends ``Retry-After``, lets one probe through when the
  cooldown ends, and ignores results of requests sent before it changed state.

`SharedQueueSender` is the broken version, kept for the tests and the demo.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import queue
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final

from snippets.support.webhook_design_endpoint import Receiver, Reply
from snippets.webhook_design.retry_schedule import (
    Outcome,
    Response,
    RetryPolicy,
    classify,
    parse_retry_after,
    post,
)


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


# --8<-- [start:broken]
class SharedQueueSender:
    """The broken version: every endpoint's deliveries in one FIFO, one pool.

    A delivery to an endpoint that hangs holds a worker for the whole
    timeout. Once every worker holds one, every delivery queued behind them
    waits, whatever its endpoint.
    """

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        *,
        workers: int = 1,
        timeout: float = 15.0,
        on_result: ResultHook | None = None,
    ) -> None:
        self._endpoints = list(endpoints)
        self._timeout, self._on_result = timeout, on_result
        self._queue: queue.Queue[tuple[Endpoint, Delivery]] = queue.Queue()
        self._stop = threading.Event()
        self._workers = [
            threading.Thread(target=self._work, daemon=True) for _ in range(workers)
        ]

    def publish(self, event_id: str, body: bytes) -> None:
        for endpoint in self._endpoints:  # fan-out: one delivery per endpoint
            self._queue.put((endpoint, Delivery(event_id, body)))

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                endpoint, delivery = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            headers = {"webhook-id": delivery.event_id}
            response = post(endpoint.url, delivery.body, headers, self._timeout)
            if self._on_result is not None:
                self._on_result(endpoint, delivery, response)

    # --8<-- [end:broken]

    def start(self) -> None:
        """Start the workers."""
        for worker in self._workers:
            worker.start()

    def close(self, timeout: float = 30.0) -> None:
        """Stop after the deliveries in progress; queued ones are dropped."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))


class State(enum.Enum):
    """The states of a `CircuitBreaker`."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


# --8<-- [start:breaker]
@dataclass(frozen=True)
class Permit:
    """Leave to send one request, stamped with the breaker's epoch.

    The epoch changes whenever the breaker changes state, so the breaker can
    tell a result that belongs to its current state from one that was in
    flight when it opened.
    """

    epoch: int
    probe: bool = False


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

    # --8<-- [end:offer]

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


class FanOutSender:
    """Deliver each event to every endpoint, each endpoint in its own lane.

    Args:
        endpoints: The subscribers; every event goes to all of them.
        max_in_flight: Concurrent requests per endpoint.
        max_backlog: Deliveries waiting per endpoint before new ones are
            dead-lettered, so a dead endpoint cannot exhaust memory.
        timeout: Seconds per request. Standard Webhooks recommends 15 to 30.
        failure_threshold: Consecutive failures that open an endpoint's breaker.
        cooldown: Seconds a breaker first stays open; doubles on a failed probe.
        max_cooldown: The longest a breaker stays open.
        retry: Each delivery's own backoff, attempts and permanent statuses;
            by default 10 attempts, full jitter below 1 s, 2 s, 4 s ... 5 min.
        on_result: Called after every attempt with the endpoint, the delivery
            and the response.
    """

    # --8<-- [start:sender]
    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        *,
        max_in_flight: int = 2,
        max_backlog: int = 10_000,
        timeout: float = 15.0,
        failure_threshold: int = 5,
        cooldown: float = 30.0,
        max_cooldown: float = 600.0,
        retry: RetryPolicy | None = None,
        on_result: ResultHook | None = None,
    ) -> None:
        retry = retry or RetryPolicy.exponential(1.0, 300.0, 9)
        self.lanes = {
            endpoint.name: Lane(
                endpoint,
                max_in_flight=max_in_flight,
                max_backlog=max_backlog,
                breaker=CircuitBreaker(failure_threshold, cooldown, max_cooldown),
                timeout=timeout,
                retry=retry,
                on_result=on_result,
            )
            for endpoint in endpoints
        }

    def publish(self, event_id: str, body: bytes) -> int:
        """Offer the event to every lane without blocking; return how many took it."""
        return sum(lane.offer(Delivery(event_id, body)) for lane in self.lanes.values())

    # --8<-- [end:sender]

    def start(self) -> None:
        """Start every lane."""
        for lane in self.lanes.values():
            lane.start()

    def close(self, timeout: float = 30.0) -> None:
        """Stop every lane, then wait up to ``timeout`` s for requests in flight."""
        for lane in self.lanes.values():
            lane.stop()
        deadline = time.monotonic() + timeout
        for lane in self.lanes.values():
            lane.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> FanOutSender:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


EVENTS: Final = 20
TIMEOUT: Final = 1.0  # seconds per request in the demo
PER_LANE: Final = 2  # requests in flight per endpoint with lanes


@contextmanager
def subscribers() -> Iterator[dict[str, Receiver]]:
    """Four real endpoints: two healthy, one that fails, one that hangs."""
    answers: dict[str, Callable[[int, float], Reply]] = {
        "healthy-a": lambda n, now: Reply(200),
        "healthy-b": lambda n, now: Reply(200),
        "failing": lambda n, now: Reply(500),
        "slow": lambda n, now: Reply(200, hang=60.0),  # until shutdown
    }
    with ExitStack() as stack:
        yield {name: stack.enter_context(Receiver(a)) for name, a in answers.items()}


# --8<-- [start:scenario]
def when_slow_times_out(isolated: bool) -> Run:
    """Publish EVENTS events; count healthy receipts at the slow one's 1st timeout.

    Both senders get the same number of workers: ``PER_LANE`` per endpoint.
    Returns the counts, and the lanes (none for the shared queue) once the
    healthy endpoints have every event and both bad endpoints' breakers are open.
    """
    snapshot: Counter[str] = Counter()
    timed_out, settled = threading.Event(), threading.Event()
    lanes: dict[str, Lane] = {}
    first = threading.Lock()

    def on_result(endpoint: Endpoint, delivery: Delivery, response: Response) -> None:
        with first:
            if endpoint.name == "slow" and not timed_out.is_set():
                for name in ("healthy-a", "healthy-b"):
                    snapshot[name] = len(receivers[name].arrivals)
                timed_out.set()
        if lanes and _settled(lanes):
            settled.set()

    with subscribers() as receivers:
        endpoints = [Endpoint(name, r.url) for name, r in receivers.items()]
        sender: FanOutSender | SharedQueueSender
        if isolated:
            sender = FanOutSender(
                endpoints,
                max_in_flight=PER_LANE,
                timeout=TIMEOUT,
                failure_threshold=3,
                on_result=on_result,
            )
            lanes.update(sender.lanes)
        else:
            workers = PER_LANE * len(endpoints)
            sender = SharedQueueSender(
                endpoints, workers=workers, timeout=TIMEOUT, on_result=on_result
            )
        sender.start()
        for n in range(EVENTS):
            sender.publish(f"evt_{n:02}", b'{"type":"invoice.paid"}')
        timed_out.wait(timeout=30)
        if isolated:
            settled.wait(timeout=30)
    sender.close()  # the receivers are gone and no longer hang: this is quick
    return snapshot, lanes


# --8<-- [end:scenario]


# --8<-- [start:demo]
def _settled(lanes: dict[str, Lane]) -> bool:
    healthy = all(
        lanes[n].stats.delivered == EVENTS for n in ("healthy-a", "healthy-b")
    )
    tripped = all(lanes[n].breaker.state is State.OPEN for n in ("failing", "slow"))
    idle = all(lane.in_flight == 0 for lane in lanes.values())
    return healthy and tripped and idle


Run = tuple[Counter[str], dict[str, Lane]]


def demo() -> list[str]:
    """The shared queue, then per-endpoint lanes, with the same four endpoints."""
    return summarize(when_slow_times_out(False), when_slow_times_out(True))


def summarize(shared: Run, isolated: Run) -> list[str]:
    """Healthy endpoints' receipts at the slow one's first timeout; breakers."""
    lines = []
    workers = PER_LANE * 4
    titles = (
        f"one shared queue, {workers} workers",
        f"per-endpoint lanes, {PER_LANE} workers each, with breakers",
    )
    for title, (snapshot, lanes) in zip(titles, (shared, isolated), strict=True):
        counts = ", ".join(f"{n} {snapshot[n]}/{EVENTS}" for n in sorted(snapshot))
        lines += [title, f"  at the slow endpoint's first timeout: {counts}"]
        for name in ("failing", "slow"):
            if name in lanes:
                lane = lanes[name]
                lines.append(
                    f"  {name + ':':<8} breaker {lane.breaker.state.value}, "
                    f"{lane.stats.delivered}/{EVENTS} delivered, {lane.waiting} waiting"
                )
    return lines


if __name__ == "__main__":
    print(*demo(), sep="\n")
# --8<-- [end:demo]
