"""Tests for snippets/webhook_design/per_endpoint_isolation.py.

The endpoints are real `http.server` receivers on loopback: healthy ones, one
that answers 500, and one that accepts the request and never answers. Waits are
bounded and driven by events (a result callback, a receiver's answer); timing
assertions are lower bounds or generous upper bounds.
"""

from __future__ import annotations

import itertools
import platform
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest

from snippets.support.webhook_design_endpoint import Receiver, Reply
from snippets.webhook_design.per_endpoint_isolation import (
    CircuitBreaker,
    Delivery,
    Endpoint,
    FanOutSender,
    Permit,
    State,
)
from snippets.webhook_design.per_endpoint_isolation.broken import SharedQueueSender
from snippets.webhook_design.per_endpoint_isolation.demo import (
    EVENTS,
    Run,
    when_slow_times_out,
)
from snippets.webhook_design.retry_schedule import Response, RetryPolicy

BODY = b'{"type":"invoice.paid"}'


@pytest.fixture(scope="module", autouse=True)
def log_versions() -> None:
    # No broker here: the endpoints are CPython's http.server on loopback.
    print(f"\nendpoints: http.server on CPython {platform.python_version()}")


def state(breaker: CircuitBreaker) -> State:
    """The breaker's state, read through a call so each check stands alone."""
    return breaker.state


class FakeClock:
    """Monotonic time that a test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Results:
    """An ``on_result`` hook that lets a test wait for a condition."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Delivery, Response]] = []
        self._changed = threading.Condition()

    def __call__(
        self, endpoint: Endpoint, delivery: Delivery, response: Response
    ) -> None:
        with self._changed:
            self.seen.append((endpoint.name, delivery, response))
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        with self._changed:
            assert self._changed.wait_for(predicate, timeout), (
                "condition not met in time"
            )


# -- see it break, and the fix: the demo's two runs ---------------------------- #


@pytest.fixture(scope="module")
def shared() -> Run:
    return when_slow_times_out(isolated=False)


@pytest.fixture(scope="module")
def isolated() -> Run:
    return when_slow_times_out(isolated=True)


def test_a_shared_queue_holds_healthy_endpoints_behind_the_slow_one(
    shared: Run,
) -> None:
    snapshot, lanes = shared
    # Eight workers, deliveries in order a, b, failing, slow, a, b ...: once
    # eight slow deliveries hold all eight workers, nothing else is sent.
    assert snapshot == {"healthy-a": 8, "healthy-b": 8}
    assert lanes == {}


def test_lanes_deliver_everything_to_healthy_endpoints_first(isolated: Run) -> None:
    snapshot, lanes = isolated
    assert snapshot == {"healthy-a": EVENTS, "healthy-b": EVENTS}
    for name in ("healthy-a", "healthy-b"):
        assert lanes[name].stats.delivered == EVENTS
        assert lanes[name].breaker.state is State.CLOSED
        assert lanes[name].stats.dead == []
    for name in ("failing", "slow"):
        assert lanes[name].breaker.state is State.OPEN
        assert lanes[name].stats.delivered == 0
        assert lanes[name].waiting == EVENTS  # parked, not lost


def test_a_shared_queue_adds_a_timeout_to_every_healthy_delivery() -> None:
    timeout, events = 0.3, 4
    healthy, slow = Receiver(), Receiver(lambda n, now: Reply(hang=30))
    endpoints = [Endpoint("healthy", healthy.url), Endpoint("slow", slow.url)]
    results = Results()
    sender = SharedQueueSender(endpoints, workers=1, timeout=timeout, on_result=results)
    sender.start()
    with healthy, slow:  # the receivers stop first and release the hang
        for n in range(events):
            sender.publish(f"evt_{n}", BODY)
        results.wait_for(lambda: len(healthy.arrivals) == events)
    sender.close()
    times = [arrival.at for arrival in healthy.arrivals]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert min(gaps) >= 0.9 * timeout  # each waited for the slow one's timeout


def test_lanes_deliver_to_healthy_endpoints_before_the_slow_one_times_out() -> None:
    events = 10
    healthy, slow = Receiver(), Receiver(lambda n, now: Reply(hang=60))
    endpoints = [Endpoint("healthy", healthy.url), Endpoint("slow", slow.url)]
    results = Results()
    sender = FanOutSender(endpoints, timeout=30, on_result=results)
    with sender, healthy, slow:  # the receivers stop first and release the hang
        for n in range(events):
            sender.publish(f"evt_{n}", BODY)
        results.wait_for(lambda: len(results.seen) == events)
        # Every healthy delivery is done; the slow endpoint has not answered.
        assert [name for name, _, _ in results.seen] == ["healthy"] * events
        assert sender.lanes["slow"].in_flight == 2


# -- bounds ---------------------------------------------------------------------- #


def test_a_lane_never_has_more_than_max_in_flight_requests() -> None:
    third = threading.Event()

    def hang(n: int, now: float) -> Reply:
        if n == 3:
            third.set()
        return Reply(hang=30)

    results = Results()
    slow, healthy = Receiver(hang), Receiver()
    endpoints = [Endpoint("slow", slow.url), Endpoint("healthy", healthy.url)]
    sender = FanOutSender(
        endpoints, max_in_flight=3, timeout=20, failure_threshold=100, on_result=results
    )
    with sender, slow, healthy:  # the receivers stop first and release the hangs
        for n in range(10):
            sender.publish(f"evt_{n}", BODY)
        assert third.wait(timeout=10)
        results.wait_for(lambda: sender.lanes["healthy"].stats.delivered == 10)
        # Three workers are stuck in the slow endpoint; none can send a fourth.
        assert len(slow.arrivals) == slow.max_in_flight == 3
        assert sender.lanes["slow"].waiting == 7


def test_publish_never_waits_and_the_backlog_is_bounded() -> None:
    slow = Receiver(lambda n, now: Reply(hang=30))
    sender = FanOutSender(
        [Endpoint("slow", slow.url)], max_in_flight=1, max_backlog=5, timeout=20
    )
    with sender, slow:  # the receiver stops first and releases the hang
        start = time.monotonic()
        accepted = sum(sender.publish(f"evt_{n}", BODY) for n in range(50))
        elapsed = time.monotonic() - start
        lane = sender.lanes["slow"]
        dead = list(lane.stats.dead)
        assert lane.waiting <= 5
    assert elapsed < 10  # waiting for one request would take the 20 s timeout
    assert accepted + len(dead) == 50
    assert 44 <= len(dead) <= 45  # 5 queued, at most 1 taken by the worker
    assert {why for _, why in dead} == {"backlog full"}


# -- the breaker, end to end ------------------------------------------------------ #


def test_the_breaker_opens_and_half_open_lets_one_probe_through() -> None:
    recovered = threading.Event()

    def answer(n: int, now: float) -> Reply:
        return Reply(200, hang=0.2) if recovered.is_set() else Reply(500)

    results = Results()
    with Receiver(answer) as receiver:
        sender = FanOutSender(
            [Endpoint("flaky", receiver.url)],
            max_in_flight=4,
            failure_threshold=3,
            cooldown=0.3,
            timeout=5,
            on_result=results,
        )
        lane = sender.lanes["flaky"]
        with sender:
            for n in range(10):
                sender.publish(f"evt_{n}", BODY)
            # Open, and every request sent before it opened has come back.
            results.wait_for(
                lambda: lane.breaker.state is State.OPEN and lane.in_flight == 0
            )
            failures = len(receiver.arrivals)
            recovered.set()
            results.wait_for(lambda: lane.stats.delivered == 10)
    assert 3 <= failures <= 3 + 3  # threshold, plus requests already in flight
    ok = receiver.arrivals[failures:]
    probe, after = ok[0], ok[1:]
    assert probe.in_flight == 1
    assert after[0].at - probe.at >= 0.15  # nobody else went while it was out
    assert 1 < max(a.in_flight for a in after) <= 4  # closed: 4 lanes again


def test_retry_after_opens_the_breaker_at_once() -> None:
    def answer(n: int, now: float) -> Reply:
        return Reply(503, {"Retry-After": "1"}) if n == 1 else Reply(200)

    results = Results()
    with Receiver(answer) as receiver:
        sender = FanOutSender(
            [Endpoint("busy", receiver.url)],
            max_in_flight=1,
            failure_threshold=5,
            cooldown=30,
            timeout=5,
            on_result=results,
        )
        with sender:
            for n in range(3):
                sender.publish(f"evt_{n}", BODY)
            results.wait_for(lambda: sender.lanes["busy"].stats.delivered == 3)
    first, second = receiver.arrivals[:2]
    # One 503 opened it (threshold 5 ignored) for 1 s (cooldown 30 s ignored).
    assert 0.9 <= second.at - first.at < 5


def test_410_gone_disables_the_lane() -> None:
    results = Results()
    with Receiver(lambda n, now: Reply(410)) as receiver:
        sender = FanOutSender(
            [Endpoint("gone", receiver.url)], max_in_flight=1, on_result=results
        )
        with sender:
            for n in range(5):
                sender.publish(f"evt_{n}", BODY)
            results.wait_for(lambda: len(results.seen) == 1)
            assert sender.publish("evt_late", BODY) == 0
        lane = sender.lanes["gone"]
    assert len(receiver.arrivals) == 1
    assert [why for _, why in lane.stats.dead] == ["410 Gone"] * 5 + [
        "endpoint disabled"
    ]


def test_rejected_deliveries_are_dead_lettered_and_do_not_trip_the_breaker() -> None:
    results = Results()
    with Receiver(lambda n, now: Reply(422)) as receiver:
        sender = FanOutSender(
            [Endpoint("strict", receiver.url)],
            failure_threshold=2,
            retry=RetryPolicy(permanent=frozenset({422})),
            on_result=results,
        )
        with sender:
            for n in range(6):
                sender.publish(f"evt_{n}", BODY)
            results.wait_for(lambda: len(results.seen) == 6)
        lane = sender.lanes["strict"]
    assert len(receiver.arrivals) == 6
    assert lane.breaker.state is State.CLOSED
    assert {why for _, why in lane.stats.dead} == {"HTTP 422"}


def test_a_delivery_is_dead_lettered_after_max_attempts() -> None:
    results = Results()
    with Receiver(lambda n, now: Reply(500)) as receiver:
        sender = FanOutSender(
            [Endpoint("broken", receiver.url)],
            max_in_flight=1,
            failure_threshold=100,
            retry=RetryPolicy((0.05, 0.05), jitter=False),
            on_result=results,
        )
        with sender:
            for n in range(2):
                sender.publish(f"evt_{n}", BODY)
            results.wait_for(lambda: len(sender.lanes["broken"].stats.dead) == 2)
    assert len(receiver.arrivals) == 6
    ids = Counter(a.headers["webhook-id"] for a in receiver.arrivals)
    assert ids == {"evt_0": 3, "evt_1": 3}
    dead = sender.lanes["broken"].stats.dead
    assert sorted(dead) == [("evt_0", "out of attempts"), ("evt_1", "out of attempts")]


def test_a_late_failure_does_not_fail_the_probe() -> None:
    # Request 1 is still out when the breaker opens. Its 500 comes back while
    # the probe is out; it is older than the probe and must not count as the
    # probe's failure (which would reopen the breaker and double the cooldown).
    release_first, late_recorded, recovered = (threading.Event() for _ in range(3))
    states: list[State] = []

    def answer(n: int, now: float) -> Reply:
        if n == 1:
            return Reply(500, hang=10, until=release_first)
        if lane.breaker.state is State.HALF_OPEN and not recovered.is_set():
            recovered.set()  # this is the probe: let the old request finish
            release_first.set()
            return Reply(200, hang=10, until=late_recorded)
        return Reply(200) if recovered.is_set() else Reply(500)

    def on_result(endpoint: Endpoint, delivery: Delivery, response: Response) -> None:
        if response.status == 500 and release_first.is_set():
            states.append(lane.breaker.state)
            late_recorded.set()
        results(endpoint, delivery, response)

    results = Results()
    with Receiver(answer) as receiver:
        sender = FanOutSender(
            [Endpoint("flaky", receiver.url)],
            max_in_flight=2,
            failure_threshold=2,
            cooldown=0.2,
            timeout=15,
            on_result=on_result,
        )
        lane = sender.lanes["flaky"]
        with sender:
            for n in range(6):
                sender.publish(f"evt_{n}", BODY)
            results.wait_for(late_recorded.is_set)
            results.wait_for(lambda: lane.breaker.state is State.CLOSED)
    assert states == [State.HALF_OPEN]  # the old result changed nothing


def test_a_late_success_does_not_close_an_open_breaker() -> None:
    release_first = threading.Event()
    states: list[State] = []

    def answer(n: int, now: float) -> Reply:
        if n == 1:
            return Reply(200, hang=10, until=release_first)
        return Reply(500)

    def on_result(endpoint: Endpoint, delivery: Delivery, response: Response) -> None:
        if response.status == 200:
            states.append(lane.breaker.state)
        elif lane.breaker.state is State.OPEN:
            release_first.set()  # the old request answers while the breaker is open
        results(endpoint, delivery, response)

    results = Results()
    with Receiver(answer) as receiver:
        sender = FanOutSender(
            [Endpoint("flaky", receiver.url)],
            max_in_flight=2,
            failure_threshold=2,
            cooldown=30,
            timeout=15,
            on_result=on_result,
        )
        lane = sender.lanes["flaky"]
        with sender:
            for n in range(6):
                sender.publish(f"evt_{n}", BODY)
            results.wait_for(lambda: bool(states))
    assert states == [State.OPEN]  # it stays open until its own probe succeeds


def test_a_failed_delivery_waits_its_backoff_while_the_lane_moves_on() -> None:
    def answer(n: int, now: float) -> Reply:
        return Reply(500) if n == 1 else Reply(200)

    results = Results()
    with Receiver(answer) as receiver:
        sender = FanOutSender(
            [Endpoint("flaky", receiver.url)],
            max_in_flight=1,
            failure_threshold=100,
            retry=RetryPolicy((30.0,), jitter=False),
            on_result=results,
        )
        lane = sender.lanes["flaky"]
        with sender:
            for n in range(5):
                sender.publish(f"evt_{n}", BODY)
            results.wait_for(lambda: lane.stats.delivered == 4)
            ids = [a.headers["webhook-id"] for a in receiver.arrivals]
            assert lane.waiting == 1  # evt_0, due again in 30 s
    assert ids == [f"evt_{n}" for n in range(5)]


def test_a_retry_comes_no_sooner_than_its_backoff() -> None:
    def answer(n: int, now: float) -> Reply:
        return Reply(500) if n == 1 else Reply(200)

    results = Results()
    with Receiver(answer) as receiver:
        sender = FanOutSender(
            [Endpoint("flaky", receiver.url)],
            max_in_flight=1,
            failure_threshold=100,
            retry=RetryPolicy((0.3,), jitter=False),
            on_result=results,
        )
        with sender:
            sender.publish("evt_0", BODY)
            results.wait_for(lambda: sender.lanes["flaky"].stats.delivered == 1)
    first, second = receiver.arrivals
    assert second.at - first.at >= 0.3


# -- the breaker, unit by unit ----------------------------------------------------- #


def granted(breaker: CircuitBreaker) -> Permit:
    permit = breaker.acquire()
    assert isinstance(permit, Permit), f"denied for {permit} s"
    return permit


def denied(breaker: CircuitBreaker) -> float:
    wait = breaker.acquire()
    assert not isinstance(wait, Permit), "a permit was granted"
    return wait


def test_breaker_opens_at_the_threshold_and_not_before() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, cooldown=10, clock=clock)
    for _ in range(2):
        breaker.failure(granted(breaker))
    assert state(breaker) is State.CLOSED
    breaker.failure(granted(breaker))
    assert state(breaker) is State.OPEN
    assert denied(breaker) == pytest.approx(10)
    clock.now += 4
    assert denied(breaker) == pytest.approx(6)


def test_a_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(failure_threshold=2, clock=FakeClock())
    breaker.failure(granted(breaker))
    breaker.success(granted(breaker))
    breaker.failure(granted(breaker))
    assert state(breaker) is State.CLOSED


def test_half_open_admits_one_probe_and_a_failed_probe_doubles_the_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        failure_threshold=1, cooldown=10, max_cooldown=25, clock=clock
    )
    breaker.failure(granted(breaker))
    clock.now += 10
    probe = granted(breaker)
    assert probe.probe and state(breaker) is State.HALF_OPEN
    assert denied(breaker) > 0  # everyone else waits for it
    breaker.failure(probe)
    assert state(breaker) is State.OPEN
    assert denied(breaker) == pytest.approx(20)
    clock.now += 20
    breaker.failure(granted(breaker))
    assert denied(breaker) == pytest.approx(25)  # capped
    clock.now += 25
    breaker.success(granted(breaker))
    assert state(breaker) is State.CLOSED
    breaker.failure(granted(breaker))
    assert denied(breaker) == pytest.approx(10)  # the cooldown was reset


def test_an_unused_probe_is_handed_back() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown=1, clock=clock)
    breaker.failure(granted(breaker))
    clock.now += 1
    breaker.release(granted(breaker))
    assert granted(breaker).probe


def test_retry_after_opens_at_once_and_is_capped() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=5, max_cooldown=60, clock=clock)
    breaker.failure(granted(breaker), retry_after=3)
    assert denied(breaker) == pytest.approx(3)
    clock.now += 3
    breaker.failure(granted(breaker), retry_after=86_400)  # the probe, with a hint
    assert denied(breaker) == pytest.approx(60)


def test_results_from_before_the_breaker_opened_are_ignored() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, cooldown=10, clock=clock)
    old_failure, old_success = granted(breaker), granted(breaker)
    breaker.failure(granted(breaker), retry_after=10)  # opens it at once
    breaker.success(old_success)  # an answer to a request sent while closed
    assert state(breaker) is State.OPEN
    clock.now += 10
    probe = granted(breaker)
    breaker.failure(old_failure)  # a timeout from before, while the probe is out
    assert state(breaker) is State.HALF_OPEN
    assert denied(breaker) > 0  # the probe is still the only request
    breaker.success(probe)
    assert state(breaker) is State.CLOSED
    breaker.failure(granted(breaker), retry_after=5)
    assert denied(breaker) == pytest.approx(5)  # not a doubled cooldown


def test_half_open_lets_one_of_a_hundred_racing_callers_through() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown=1, clock=clock)
    breaker.failure(granted(breaker))
    clock.now += 1
    start = threading.Barrier(100)
    permits: list[Permit | float] = []
    lock = threading.Lock()

    def caller() -> None:
        start.wait(timeout=5)
        permit = breaker.acquire()
        with lock:
            permits.append(permit)

    threads = [threading.Thread(target=caller) for _ in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
        assert not thread.is_alive()
    assert sum(isinstance(permit, Permit) for permit in permits) == 1
