"""Tests for snippets/webhook_design/retry_schedule.py.

Every delivery goes over real HTTP to a `Receiver` on loopback. Schedules are
driven by a `VirtualClock`, so a retry due in two hours happens at once and the
receiver records the virtual time it arrived: runs are fast and repeatable.
"""

from __future__ import annotations

import email.utils
import itertools
import platform
import random
import socket
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from snippets.support.webhook_design_clock import VirtualClock
from snippets.support.webhook_design_endpoint import Receiver, Reply
from snippets.webhook_design.retry_schedule import (
    STANDARD_WEBHOOKS_SCHEDULE,
    Outcome,
    RetryDispatcher,
    RetryPolicy,
    classify,
    parse_retry_after,
)
from snippets.webhook_design.retry_schedule.demo import POLICIES, herd, per_second

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BODY = b'{"type":"invoice.paid","data":{"id":"in_1"}}'


@pytest.fixture(scope="module", autouse=True)
def log_versions() -> None:
    # No broker here: the "server" is CPython's http.server on loopback.
    print(f"\nreceiver: http.server on CPython {platform.python_version()}")
    print(f"SQLite {sqlite3.sqlite_version}")


@pytest.fixture
def db() -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(":memory:")) as connection:
        yield connection


def dispatch(
    db: sqlite3.Connection,
    answer: Callable[[int, float], Reply],
    policy: RetryPolicy,
    *,
    deliveries: int = 1,
    timeout: float = 5.0,
    clock: VirtualClock | None = None,
    secret: str | None = None,
) -> tuple[RetryDispatcher, Receiver, list[str]]:
    """Enqueue deliveries to a fresh receiver and run until none is pending."""
    clock = clock or VirtualClock()
    with Receiver(answer, clock.now) as receiver:
        dispatcher = RetryDispatcher(
            db,
            policy,
            clock=clock,
            rng=random.Random(1),
            timeout=timeout,
            secret=secret,
        )
        ids = [dispatcher.enqueue(receiver.url, BODY) for _ in range(deliveries)]
        dispatcher.run(threading.Event(), until_idle=True, max_wait=float("inf"))
    return dispatcher, receiver, ids


def state(db: sqlite3.Connection, webhook_id: str) -> tuple[str, int]:
    row = db.execute(
        "SELECT state, attempts FROM delivery WHERE webhook_id = ?", (webhook_id,)
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def results(db: sqlite3.Connection, webhook_id: str) -> list[str]:
    return [
        result
        for (result,) in db.execute(
            "SELECT result FROM attempt JOIN delivery ON delivery.id = delivery_id"
            " WHERE webhook_id = ? ORDER BY number",
            (webhook_id,),
        )
    ]


def gaps(receiver: Receiver) -> list[float]:
    times = [arrival.at for arrival in receiver.arrivals]
    return [later - earlier for earlier, later in itertools.pairwise(times)]


# -- the schedule --------------------------------------------------------------- #


def test_standard_webhooks_schedule_matches_the_spec_table() -> None:
    # "Time since start" column of the spec's example retry schedule.
    spec = ["00:00:05", "00:05:05", "00:35:05", "02:35:05", "07:35:05",
            "17:35:05", "31:35:05", "51:35:05", "75:35:05"]  # fmt: skip
    elapsed, since_start = 0.0, []
    for wait in STANDARD_WEBHOOKS_SCHEDULE:
        elapsed += wait
        hours, rest = divmod(int(elapsed), 3600)
        since_start.append(f"{hours:02}:{rest // 60:02}:{rest % 60:02}")
    assert since_start == spec
    assert RetryPolicy().max_attempts == 10


def test_full_jitter_stays_below_each_ceiling_and_uses_the_whole_range() -> None:
    policy, rng = RetryPolicy(), random.Random(42)
    for attempt, ceiling in enumerate(policy.schedule, start=1):
        draws = [policy.delay(attempt, rng) for _ in range(2_000)]
        waits = [wait for wait in draws if wait is not None]
        assert len(waits) == len(draws)
        assert all(0.0 <= wait <= ceiling for wait in waits)
        # Full jitter: draws cover [0, ceiling], not a band around it.
        assert min(waits) < 0.05 * ceiling
        assert max(waits) > 0.95 * ceiling


def test_the_same_seed_gives_the_same_schedule() -> None:
    policy = RetryPolicy()

    def draw(seed: int) -> list[float | None]:
        rng = random.Random(seed)
        return [policy.delay(n, rng) for n in range(1, policy.max_attempts)]

    assert draw(3) == draw(3)
    assert draw(3) != draw(4)


def test_without_jitter_every_wait_is_the_full_ceiling() -> None:
    policy, rng = RetryPolicy(jitter=False), random.Random(0)
    waits = [policy.delay(n, rng) for n in range(1, policy.max_attempts)]
    assert waits == list(STANDARD_WEBHOOKS_SCHEDULE)


def test_attempts_are_bounded() -> None:
    policy, rng = RetryPolicy.exponential(1, 60, 4), random.Random(0)
    assert policy.max_attempts == 5
    assert policy.delay(4, rng) is not None
    assert policy.delay(5, rng) is None
    with pytest.raises(ValueError):
        policy.delay(0, rng)


def test_retry_after_is_a_floor_with_jitter_on_top_and_a_cap() -> None:
    policy, rng = RetryPolicy(max_retry_after=3_600), random.Random(5)
    waits = [policy.delay(2, rng, retry_after=120) for _ in range(500)]
    assert all(wait is not None and 120 <= wait <= 120 + 300 for wait in waits)
    assert len(set(waits)) == 500  # deliveries told "120" do not return together
    capped = policy.delay(1, rng, retry_after=365 * 86_400)
    assert capped is not None and 3_600 <= capped <= 3_600 + 5


# -- Retry-After and status classification -------------------------------------- #


def test_parse_retry_after_reads_both_forms() -> None:
    now = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    in_five_minutes = email.utils.formatdate(now + 300, usegmt=True)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(" 7 ", now) == 7.0
    assert parse_retry_after(in_five_minutes, now) == 300.0
    assert parse_retry_after("Thu, 01 Jan 2026 00:01:00 -0000", now) == 60.0
    assert parse_retry_after("Fri, 31 Dec 1999 23:59:59 GMT", now) == 0.0
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("-5", now) is None
    assert parse_retry_after("1.5", now) is None


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.DELIVERED),
        (204, Outcome.DELIVERED),
        (301, Outcome.RETRY),
        (400, Outcome.RETRY),
        (401, Outcome.RETRY),
        (404, Outcome.RETRY),
        (408, Outcome.RETRY),
        (410, Outcome.GONE),
        (422, Outcome.RETRY),
        (429, Outcome.RETRY),
        (500, Outcome.RETRY),
        (502, Outcome.RETRY),
        (503, Outcome.RETRY),
        (None, Outcome.RETRY),
    ],
)
def test_classify(status: int | None, outcome: Outcome) -> None:
    assert classify(status) is outcome


# -- the dispatcher against real receivers -------------------------------------- #


def test_a_failing_endpoint_gets_exactly_max_attempts_requests(
    db: sqlite3.Connection,
) -> None:
    policy = RetryPolicy.exponential(5, 3_600, 5)
    _, receiver, (webhook_id,) = dispatch(db, lambda n, now: Reply(500), policy)
    assert len(receiver.arrivals) == policy.max_attempts == 6
    assert state(db, webhook_id) == ("failed", 6)
    assert results(db, webhook_id) == ["HTTP 500"] * 6
    assert all(
        0 <= gap <= ceiling
        for gap, ceiling in zip(gaps(receiver), policy.schedule, strict=True)
    )


def test_retry_after_seconds_is_honoured(db: sqlite3.Connection) -> None:
    def answer(n: int, now: float) -> Reply:
        return Reply(503, {"Retry-After": "120"}) if n == 1 else Reply(200)

    policy = RetryPolicy.exponential(5, 3_600, 5)
    _, receiver, (webhook_id,) = dispatch(db, answer, policy)
    assert state(db, webhook_id) == ("delivered", 2)
    (gap,) = gaps(receiver)
    assert 120 <= gap <= 120 + policy.schedule[0]


def test_retry_after_http_date_is_honoured(db: sqlite3.Connection) -> None:
    def answer(n: int, now: float) -> Reply:
        if n > 1:
            return Reply(200)
        return Reply(
            429, {"Retry-After": email.utils.formatdate(now + 600, usegmt=True)}
        )

    policy = RetryPolicy.exponential(5, 3_600, 5)
    _, receiver, (webhook_id,) = dispatch(db, answer, policy)
    assert state(db, webhook_id) == ("delivered", 2)
    (gap,) = gaps(receiver)
    # The date has one-second resolution: it may name up to 1 s earlier.
    assert 599 <= gap <= 600 + policy.schedule[0]


def test_an_absurd_retry_after_is_capped(db: sqlite3.Connection) -> None:
    def answer(n: int, now: float) -> Reply:
        return (
            Reply(503, {"Retry-After": str(10 * 365 * 86_400)}) if n == 1 else Reply()
        )

    policy = RetryPolicy((5.0, 5.0), max_retry_after=3_600)
    _, receiver, (webhook_id,) = dispatch(db, answer, policy)
    assert state(db, webhook_id) == ("delivered", 2)
    (gap,) = gaps(receiver)
    assert 3_600 <= gap <= 3_605


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_every_4xx_but_410_is_retried_by_default(
    db: sqlite3.Connection, status: int
) -> None:
    # Standard Webhooks: any non-2xx is a failure ("e.g: 404 and 500").
    def answer(n: int, now: float) -> Reply:
        return Reply(status) if n == 1 else Reply(200)

    _, receiver, (webhook_id,) = dispatch(db, answer, RetryPolicy.exponential(5, 60, 3))
    assert len(receiver.arrivals) == 2
    assert state(db, webhook_id) == ("delivered", 2)
    assert results(db, webhook_id) == [f"HTTP {status}", "HTTP 200"]


def test_a_permanent_set_is_opt_in(db: sqlite3.Connection) -> None:
    policy = RetryPolicy.exponential(5, 60, 3, permanent=frozenset({400, 422}))
    assert classify(422, policy.permanent) is Outcome.REJECTED
    assert classify(404, policy.permanent) is Outcome.RETRY
    assert classify(410, policy.permanent) is Outcome.GONE
    _, receiver, (webhook_id,) = dispatch(db, lambda n, now: Reply(422), policy)
    assert len(receiver.arrivals) == 1
    assert state(db, webhook_id) == ("failed", 1)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 301])
def test_transient_statuses_are_retried(db: sqlite3.Connection, status: int) -> None:
    def answer(n: int, now: float) -> Reply:
        return Reply(status) if n == 1 else Reply(200)

    _, receiver, (webhook_id,) = dispatch(db, answer, RetryPolicy.exponential(5, 60, 3))
    assert len(receiver.arrivals) == 2
    assert state(db, webhook_id) == ("delivered", 2)


def test_a_timeout_is_retried_with_the_same_webhook_id(db: sqlite3.Connection) -> None:
    def answer(n: int, now: float) -> Reply:
        return Reply(200, hang=5.0) if n == 1 else Reply(200)  # 1st: no answer in time

    policy = RetryPolicy.exponential(5, 60, 3)
    _, receiver, (webhook_id,) = dispatch(db, answer, policy, timeout=0.3)
    assert results(db, webhook_id) == ["timeout", "HTTP 200"]
    assert state(db, webhook_id) == ("delivered", 2)
    # The receiver may have processed the first copy: same id, so it can dedupe.
    assert [a.headers["webhook-id"] for a in receiver.arrivals] == [webhook_id] * 2


def test_a_refused_connection_is_retried(db: sqlite3.Connection) -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dispatcher = RetryDispatcher(
        db, RetryPolicy((1.0, 1.0)), clock=VirtualClock(), timeout=1.0
    )
    webhook_id = dispatcher.enqueue(f"http://127.0.0.1:{port}/webhook", BODY)
    dispatcher.run(threading.Event(), until_idle=True, max_wait=float("inf"))
    assert results(db, webhook_id) == ["ConnectionRefusedError"] * 3
    assert state(db, webhook_id) == ("failed", 3)


def test_410_gone_disables_the_endpoint(db: sqlite3.Connection) -> None:
    clock = VirtualClock()
    with Receiver(lambda n, now: Reply(410), clock.now) as receiver:
        dispatcher = RetryDispatcher(db, RetryPolicy(), clock=clock)
        first = dispatcher.enqueue(receiver.url, BODY)
        second = dispatcher.enqueue(receiver.url, BODY)
        dispatcher.run(threading.Event(), until_idle=True, max_wait=float("inf"))
        later = dispatcher.enqueue(receiver.url, BODY)
        assert dispatcher.run_due() == 0
    assert len(receiver.arrivals) == 1
    assert [state(db, i)[0] for i in (first, second, later)] == ["disabled"] * 3


def test_each_attempt_is_signed_with_its_own_timestamp(db: sqlite3.Connection) -> None:
    # Standard Webhooks: the id stays, the attempt timestamp changes. The
    # virtual clock starts at real time so that the 5-minute tolerance holds.
    def answer(n: int, now: float) -> Reply:
        return Reply(503, {"Retry-After": "120"}) if n == 1 else Reply(200)

    clock = VirtualClock(start=time.time())
    policy = RetryPolicy((1.0,))
    _, receiver, (webhook_id,) = dispatch(
        db, answer, policy, clock=clock, secret=SECRET
    )
    first, second = receiver.arrivals
    verifier = Webhook(SECRET)
    for arrival in receiver.arrivals:
        verifier.verify(arrival.body, dict(arrival.headers))  # raises if invalid
        assert arrival.headers["webhook-id"] == webhook_id
    sent = [int(a.headers["webhook-timestamp"]) for a in (first, second)]
    assert 119 <= sent[1] - sent[0] <= 122


def test_the_schedule_survives_a_restart(tmp_path: Path) -> None:
    clock, path = VirtualClock(), tmp_path / "ledger.sqlite3"

    def answer(n: int, now: float) -> Reply:
        return Reply(503, {"Retry-After": "3600"}) if n == 1 else Reply(200)

    with Receiver(answer, clock.now) as receiver:
        with closing(sqlite3.connect(path)) as first_db:
            first = RetryDispatcher(first_db, RetryPolicy((60.0,)), clock=clock)
            webhook_id = first.enqueue(receiver.url, BODY)
            assert first.run_due() == 1  # fails; due again in an hour
        with closing(sqlite3.connect(path)) as second_db:  # a new process, say
            second = RetryDispatcher(second_db, RetryPolicy((60.0,)), clock=clock)
            assert second.run_due() == 0  # not due yet
            second.run(threading.Event(), until_idle=True, max_wait=float("inf"))
            assert state(second_db, webhook_id) == ("delivered", 2)
    (gap,) = gaps(receiver)
    assert 3_600 <= gap <= 3_660


def test_two_dispatchers_never_send_the_same_attempt_twice(tmp_path: Path) -> None:
    # Each request is held until a second one is in flight, so both
    # dispatchers have picked their first row before either one finishes.
    both_busy = threading.Event()

    def answer(n: int, now: float) -> Reply:
        if n >= 2:
            both_busy.set()
        return Reply(200, hang=5.0, until=both_busy)

    path, deliveries = tmp_path / "ledger.sqlite3", 20
    sent: dict[str, int] = {}
    with Receiver(answer) as receiver:
        with closing(sqlite3.connect(path)) as db:
            producer = RetryDispatcher(db, RetryPolicy((1.0,)), timeout=5.0)
            ids = [producer.enqueue(receiver.url, BODY) for _ in range(deliveries)]
        start = threading.Barrier(2)

        def serve(name: str) -> None:
            with closing(sqlite3.connect(path)) as own:
                dispatcher = RetryDispatcher(own, RetryPolicy((1.0,)), timeout=5.0)
                start.wait(timeout=5)
                sent[name] = dispatcher.run_due()

        workers = [threading.Thread(target=serve, args=(n,)) for n in "ab"]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=30)
            assert not worker.is_alive()
    assert both_busy.is_set()
    received = Counter(a.headers["webhook-id"] for a in receiver.arrivals)
    assert received == Counter(ids)  # every delivery once, none twice
    assert sent["a"] + sent["b"] == deliveries and min(sent.values()) >= 1
    with closing(sqlite3.connect(path)) as db:
        assert {state(db, i) for i in ids} == {("delivered", 1)}


def test_a_lease_left_by_a_dead_dispatcher_expires(db: sqlite3.Connection) -> None:
    clock = VirtualClock()
    with Receiver(now=clock.now) as receiver:
        crashed = RetryDispatcher(db, clock=clock, timeout=5.0, lease=60.0)
        webhook_id = crashed.enqueue(receiver.url, BODY)
        assert crashed.claim() is not None  # then the process dies
        survivor = RetryDispatcher(db, clock=clock, timeout=5.0, lease=60.0)
        assert survivor.run_due() == 0  # leased: not sent twice
        clock.wait(60.0, threading.Event())
        assert survivor.run_due() == 1
    assert state(db, webhook_id) == ("delivered", 1)
    assert len(receiver.arrivals) == 1


def test_a_result_after_the_lease_expired_is_not_recorded(
    db: sqlite3.Connection,
) -> None:
    clock = VirtualClock()
    with Receiver(lambda n, now: Reply(503), now=clock.now) as receiver:
        slow = RetryDispatcher(db, RetryPolicy((5.0,)), clock=clock, lease=60.0)
        webhook_id = slow.enqueue(receiver.url, BODY)
        late = slow.claim()
        assert late is not None
        clock.wait(61.0, threading.Event())  # the lease runs out mid-attempt
        other = RetryDispatcher(db, RetryPolicy((5.0,)), clock=clock, lease=60.0)
        taken = other.claim()
        assert taken is not None and taken.delivery_id == late.delivery_id
        assert slow.deliver(late) is None  # fenced: the ledger is not touched
        assert other.deliver(taken) is Outcome.RETRY
    assert results(db, webhook_id) == ["HTTP 503"]
    assert state(db, webhook_id) == ("pending", 1)


def test_stop_ends_a_long_wait(tmp_path: Path) -> None:
    started = threading.Event()

    def serve(stop: threading.Event) -> None:
        with closing(sqlite3.connect(tmp_path / "ledger.sqlite3")) as db:
            dispatcher = RetryDispatcher(db, timeout=1.0)  # the real clock
            started.set()
            dispatcher.run(stop, max_wait=3_600)  # idle: waits up to an hour

    stop = threading.Event()
    worker = threading.Thread(target=serve, args=(stop,))
    worker.start()
    assert started.wait(timeout=5)
    stop.set()
    worker.join(timeout=5)
    assert not worker.is_alive()


# -- see it break: the retry herd ---------------------------------------------- #


@pytest.fixture(scope="module")
def herds() -> dict[str, list[float]]:
    return {name: herd(policy) for name, policy in POLICIES.items()}


@pytest.mark.parametrize("name", ["fixed 30 s, no jitter", "exponential, no jitter"])
def test_without_jitter_every_retry_lands_in_the_same_second(
    herds: dict[str, list[float]], name: str
) -> None:
    seconds = per_second(herds[name])
    # 100 deliveries, and every second that has traffic has all 100 of them.
    assert set(seconds.values()) == {100}
    assert max(per_second(herds[name], since=60).values()) == 100


def test_full_jitter_spreads_the_retries(herds: dict[str, list[float]]) -> None:
    after = per_second(herds["exponential, full jitter"], since=60)
    assert max(after.values()) <= 10
    assert sum(after.values()) == 100  # every delivery succeeds once, later
    mean = sum(after.values()) / len(after)
    assert max(after.values()) <= 5 * mean


def test_every_delivery_arrives_exactly_once_after_recovery(
    herds: dict[str, list[float]],
) -> None:
    for arrivals in herds.values():
        assert sum(per_second(arrivals, since=60).values()) == 100
