"""Tests for snippets/container_orchestration/bulkheads_and_circuit_breakers.py.

Every call is real HTTP on loopback: each dependency is a `ThreadingHTTPServer`
in a thread that answers, fails with 503, or holds requests until released.
The tests make concurrency deterministic with barriers, the servers' arrival
counts and bounded waits, and run the breaker's cool-down on a manual clock.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from snippets.container_orchestration.bulkheads_and_circuit_breakers import (
    AsyncBulkhead,
    Bulkhead,
    BulkheadFull,
    BulkheadGateway,
    CircuitBreaker,
    CircuitOpenError,
    DeadlineExceeded,
    DependencyError,
    Gateway,
    RequestError,
    State,
    async_http_get,
    http_get,
    retry,
)
from snippets.container_orchestration.bulkheads_and_circuit_breakers.demo import (
    CATALOG_CALLS,
    PAYMENTS_CALLS,
    POOL,
    SLOTS,
    Herd,
    Isolation,
    async_isolation_demo,
    isolation_demo,
    recovery_herd,
    retry_storm,
)
from snippets.support.container_orchestration_dependency import (
    DependencyServer,
    ManualClock,
)


@pytest.fixture(scope="module", autouse=True)
def server_version() -> None:
    """Log what the dependencies run on (pytest -s shows it)."""
    from http.server import BaseHTTPRequestHandler

    handler = BaseHTTPRequestHandler
    print(f"\ndependency servers: {handler.server_version} {handler.sys_version}")


@pytest.fixture
def payments() -> Iterator[DependencyServer]:
    with DependencyServer("payments") as server:
        yield server


def state(breaker: CircuitBreaker) -> State:
    """Read the state afresh (a plain attribute read would be narrowed by mypy)."""
    return breaker.state


def fail_n_times(breaker: CircuitBreaker, url: str, times: int) -> None:
    for _ in range(times):
        with pytest.raises(DependencyError):
            breaker.call(lambda: http_get(url, timeout=2.0))


# -- see it break, and the fix: bulkheads ----------------------------------- #


@pytest.fixture(scope="module")
def isolation() -> tuple[Isolation, Isolation]:
    return isolation_demo(bulkheads=False), isolation_demo(bulkheads=True)


def test_shared_pool_lets_a_hanging_dependency_starve_a_healthy_one(
    isolation: tuple[Isolation, Isolation],
) -> None:
    shared, _ = isolation
    assert shared.held == POOL  # payments holds every worker
    assert shared.answered == 0  # so no catalog call met its deadline
    assert shared.catalog_hits == 0  # none of them ever left the queue


def test_bulkheads_keep_the_healthy_dependency_answering(
    isolation: tuple[Isolation, Isolation],
) -> None:
    _, isolated = isolation
    assert isolated.held == SLOTS
    assert isolated.rejected == PAYMENTS_CALLS - SLOTS
    assert isolated.answered == CATALOG_CALLS
    assert isolated.catalog_hits == CATALOG_CALLS


@pytest.fixture(scope="module")
def async_isolation() -> tuple[Isolation, Isolation]:
    return async_isolation_demo(bulkheads=False), async_isolation_demo(bulkheads=True)


def test_asyncio_shared_limit_starves_the_healthy_dependency(
    async_isolation: tuple[Isolation, Isolation],
) -> None:
    shared, _ = async_isolation
    assert shared.held == POOL
    assert shared.answered == 0
    assert shared.catalog_hits == 0  # they never got a permit


def test_asyncio_bulkheads_keep_the_healthy_dependency_answering(
    async_isolation: tuple[Isolation, Isolation],
) -> None:
    _, isolated = async_isolation
    assert isolated.held == SLOTS
    assert isolated.rejected == PAYMENTS_CALLS - SLOTS
    assert isolated.answered == CATALOG_CALLS


# -- bulkhead details ------------------------------------------------------- #


def test_full_bulkhead_fails_fast_and_a_socket_timeout_frees_the_slot(
    payments: DependencyServer,
) -> None:
    payments.mode = "hang"
    bulkhead = Bulkhead("payments", 1, acquire_timeout=0.05)
    call_timeout = 2.0  # long next to the 0.05 s wait for a slot
    gateway = BulkheadGateway(
        4, call_timeout=call_timeout, bulkheads={"payments": bulkhead}
    )
    try:
        held = gateway.submit("payments", payments.url)
        assert payments.wait_for_hits(1, timeout=5) == 1
        started = time.monotonic()
        with pytest.raises(BulkheadFull):
            gateway.submit("payments", payments.url)
        # Rejected after its short wait for a slot, long before the held call's
        # timeout could have freed one; the margin absorbs a loaded machine.
        assert time.monotonic() - started < call_timeout / 2
        assert bulkhead.rejected == 1
        # The held call ends with its own socket timeout, and its slot returns.
        assert isinstance(held.exception(timeout=5), DependencyError)
        again = gateway.submit("payments", payments.url)
        assert payments.wait_for_hits(2, timeout=5) == 2
    finally:
        payments.release()
        gateway.close()
    assert again.result(timeout=5) == b"payments"
    assert bulkhead.rejected == 1
    # Every slot came back: slot() gets the only one, so acquire() must fail.
    with bulkhead.slot(), pytest.raises(BulkheadFull):
        bulkhead.acquire()
    assert bulkhead.rejected == 2


def test_deadline_cancels_a_queued_call_so_it_never_runs(
    payments: DependencyServer,
) -> None:
    payments.mode = "hang"
    gateway = Gateway(1, call_timeout=5.0)
    with DependencyServer("catalog") as catalog:
        try:
            gateway.submit("payments", payments.url)  # takes the only worker
            assert payments.wait_for_hits(1, timeout=5) == 1
            with pytest.raises(DeadlineExceeded):
                gateway.call("catalog", catalog.url, deadline=0.2)
            payments.release()  # the worker is free again
            # The pool runs calls in order: had the timed-out call not been
            # cancelled, it would reach catalog before this one.
            assert gateway.call("catalog", catalog.url, deadline=5.0) == b"catalog"
        finally:
            payments.release()
            gateway.close()
        assert catalog.hits == 1


def test_async_bulkhead_rejects_after_its_timeout_and_frees_slots_on_cancel() -> None:
    async def scenario() -> tuple[bool, int, bool]:
        bulkhead = AsyncBulkhead("payments", 1, acquire_timeout=0.05)
        inside, forever = asyncio.Event(), asyncio.Event()

        async def hold() -> None:
            async with bulkhead.slot():
                inside.set()
                await forever.wait()

        holder = asyncio.create_task(hold())
        await asyncio.wait_for(inside.wait(), 5)
        try:
            async with bulkhead.slot():
                pass
            rejected_when_full = False
        except BulkheadFull:
            rejected_when_full = True
        holder.cancel()  # the holder's caller gives up: its slot must return
        await asyncio.gather(holder, return_exceptions=True)
        async with bulkhead.slot():
            free_after_cancel = True
        return rejected_when_full, bulkhead.rejected, free_after_cancel

    assert asyncio.run(scenario()) == (True, 1, True)


# -- the circuit breaker ---------------------------------------------------- #


def test_breaker_opens_after_consecutive_failures_then_spares_the_dependency(
    payments: DependencyServer,
) -> None:
    payments.mode = "down"
    breaker = CircuitBreaker("payments", failure_threshold=3, clock=ManualClock())
    fail_n_times(breaker, payments.url, 3)
    assert state(breaker) is State.OPEN
    for _ in range(50):
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: http_get(payments.url, timeout=2.0))
    assert payments.hits == 3  # the 50 rejected calls never left the process


def test_a_success_resets_the_consecutive_failure_count(
    payments: DependencyServer,
) -> None:
    breaker = CircuitBreaker("payments", failure_threshold=3, clock=ManualClock())
    payments.mode = "down"
    fail_n_times(breaker, payments.url, 2)
    payments.mode = "up"
    assert breaker.call(lambda: http_get(payments.url, timeout=2.0)) == b"payments"
    payments.mode = "down"
    fail_n_times(breaker, payments.url, 2)
    assert state(breaker) is State.CLOSED
    fail_n_times(breaker, payments.url, 1)
    assert state(breaker) is State.OPEN


def test_failed_trial_call_reopens_for_a_full_cool_down(
    payments: DependencyServer,
) -> None:
    payments.mode = "down"
    clock = ManualClock()
    breaker = CircuitBreaker(
        "payments", failure_threshold=3, reset_timeout=5.0, clock=clock
    )
    fail_n_times(breaker, payments.url, 3)
    clock.advance(5.0)
    assert state(breaker) is State.HALF_OPEN
    fail_n_times(breaker, payments.url, 1)  # the trial call fails
    assert state(breaker) is State.OPEN
    clock.advance(4.9)
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: http_get(payments.url, timeout=2.0))
    assert payments.hits == 4
    clock.advance(0.1)
    payments.mode = "up"
    assert breaker.call(lambda: http_get(payments.url, timeout=2.0)) == b"payments"
    assert state(breaker) is State.CLOSED


def test_retry_after_opens_the_breaker_at_once_for_that_long(
    payments: DependencyServer,
) -> None:
    payments.mode, payments.retry_after = "down", 30
    clock = ManualClock()
    breaker = CircuitBreaker(
        "payments", failure_threshold=5, reset_timeout=5.0, clock=clock
    )
    with pytest.raises(DependencyError) as raised:
        breaker.call(lambda: http_get(payments.url, timeout=2.0))
    assert (raised.value.status, raised.value.retry_after) == (503, 30.0)
    assert state(breaker) is State.OPEN  # one failure, not five
    clock.advance(29.0)
    assert state(breaker) is State.OPEN  # the 5 s cool-down is not enough
    clock.advance(1.0)
    assert state(breaker) is State.HALF_OPEN


def test_request_errors_are_not_the_dependencys_failures(
    payments: DependencyServer,
) -> None:
    breaker = CircuitBreaker("payments", failure_threshold=3, clock=ManualClock())
    for _ in range(5):
        with pytest.raises(RequestError):
            breaker.call(lambda: http_get(payments.url + "missing", timeout=2.0))
    assert state(breaker) is State.CLOSED


def test_a_call_ending_without_a_verdict_hands_the_trial_to_the_next_caller() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(
        "payments", failure_threshold=1, reset_timeout=5.0, clock=clock
    )

    def down() -> bytes:
        raise DependencyError("payments: HTTP 503", 503)

    def rejected() -> bytes:
        raise BulkheadFull("payments: 4 calls in flight")

    with pytest.raises(DependencyError):
        breaker.call(down)
    clock.advance(5.0)
    with pytest.raises(BulkheadFull):
        breaker.call(rejected)  # admitted as the trial, but no verdict
    assert state(breaker) is State.HALF_OPEN
    assert breaker.call(lambda: b"ok") == b"ok"  # the next caller is the trial
    assert state(breaker) is State.CLOSED


def test_a_cancelled_asyncio_trial_hands_the_trial_to_the_next_caller() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(
        "payments", failure_threshold=1, reset_timeout=5.0, clock=clock
    )

    async def down() -> bytes:
        raise DependencyError("payments: HTTP 503", 503)

    async def scenario() -> tuple[State, bytes]:
        with pytest.raises(DependencyError):
            await breaker.acall(down)
        clock.advance(5.0)
        started, never = asyncio.Event(), asyncio.Event()

        async def slow() -> bytes:
            started.set()
            await never.wait()
            return b"never"

        trial = asyncio.create_task(breaker.acall(slow))
        await asyncio.wait_for(started.wait(), 5)
        trial.cancel()  # e.g. the caller's deadline passed
        await asyncio.gather(trial, return_exceptions=True)
        after_cancel = state(breaker)

        async def ok() -> bytes:
            return b"ok"

        return after_cancel, await breaker.acall(ok)

    assert asyncio.run(scenario()) == (State.HALF_OPEN, b"ok")
    assert state(breaker) is State.CLOSED


def test_concurrent_failures_open_the_breaker_once_and_events_see_the_state() -> None:
    racers = 8
    events: list[tuple[State, State, State]] = []
    breaker: CircuitBreaker

    def on_change(name: str, old: State, new: State) -> None:
        events.append((old, new, breaker.state))  # would deadlock under the lock

    breaker = CircuitBreaker(
        "payments", failure_threshold=3, clock=ManualClock(), on_change=on_change
    )
    all_inside = threading.Barrier(racers)

    def failing_call() -> bytes:
        all_inside.wait(timeout=5)  # every racer was admitted while closed
        raise DependencyError("payments: HTTP 503", 503)

    def racer() -> None:
        with pytest.raises(DependencyError):
            breaker.call(failing_call)

    threads = [threading.Thread(target=racer) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
        assert not thread.is_alive(), "a racer is stuck: a callback under the lock?"
    assert events == [(State.CLOSED, State.OPEN, State.OPEN)]


# -- see it break, and the fix: the recovery herd --------------------------- #


@pytest.fixture(scope="module")
def herd() -> tuple[Herd, Herd]:
    return recovery_herd(use_breaker=False), recovery_herd(use_breaker=True)


def test_without_a_breaker_every_caller_hits_the_recovering_dependency(
    herd: tuple[Herd, Herd],
) -> None:
    without, _ = herd
    assert without.reached == 20
    assert without.succeeded == 20


def test_half_open_lets_exactly_one_trial_call_through(
    herd: tuple[Herd, Herd],
) -> None:
    _, guarded = herd
    assert guarded.reached == 1
    assert guarded.failed_fast == 19
    assert guarded.succeeded == 1
    assert guarded.state is State.CLOSED


# -- see it break, and the fix: the retry storm ----------------------------- #


def test_asyncio_breaker_lets_one_trial_call_through_among_many_tasks(
    payments: DependencyServer,
) -> None:
    tasks_count = 20
    clock = ManualClock()
    breaker = CircuitBreaker(
        "payments", failure_threshold=1, reset_timeout=5.0, clock=clock
    )
    payments.mode = "down"
    fail_n_times(breaker, payments.url, 1)
    clock.advance(5.0)
    payments.mode = "hang"  # recovering: holds the trial call open

    async def scenario() -> list[BaseException | bytes]:
        calls = [
            asyncio.create_task(
                breaker.acall(lambda: async_http_get(payments.url, timeout=10.0))
            )
            for _ in range(tasks_count)
        ]
        for _ in range(1000):  # bounded: at most ~5 s
            settled = sum(call.done() for call in calls) + payments.hits - 1
            if settled >= tasks_count:  # each task failed fast or reached payments
                break
            await asyncio.sleep(0.005)
        assert payments.hits == 2  # the failure that opened it, and one trial
        payments.release()
        return await asyncio.wait_for(
            asyncio.gather(*calls, return_exceptions=True), 10
        )

    results = asyncio.run(scenario())
    assert sum(isinstance(r, CircuitOpenError) for r in results) == tasks_count - 1
    assert results.count(b"payments") == 1
    assert state(breaker) is State.CLOSED


@pytest.fixture(scope="module")
def storm() -> tuple[list[int], list[int]]:
    return retry_storm(use_breaker=False), retry_storm(use_breaker=True)


def test_retries_without_a_breaker_triple_the_load_on_a_down_dependency(
    storm: tuple[list[int], list[int]],
) -> None:
    without, _ = storm
    assert without[:8] == [30] * 8  # 10 callers x 3 attempts, every second
    assert without[8:] == [10] * 4  # back up: one attempt each


def test_breaker_spares_the_down_dependency_and_probes_once_per_cool_down(
    storm: tuple[list[int], list[int]],
) -> None:
    _, guarded = storm
    assert guarded[0] == 3  # three failures open it (threshold 3)
    assert guarded[5] == 1  # 5 s later: one trial call, which fails
    assert sum(guarded[:8]) == 4  # everything else failed fast
    assert guarded[8:10] == [0, 0]  # back up, but the breaker is still open
    assert guarded[10:] == [10, 10]  # the trial call succeeded: closed


def test_retry_stops_at_an_open_breaker_and_backs_off_otherwise() -> None:
    calls, sleeps = 0, list[float]()

    def open_breaker() -> bytes:
        nonlocal calls
        calls += 1
        raise CircuitOpenError("payments: open")

    with pytest.raises(CircuitOpenError):
        retry(open_breaker, attempts=5, delay=0.1, sleep=sleeps.append)
    assert (calls, sleeps) == (1, [])

    def down() -> bytes:
        nonlocal calls
        calls += 1
        raise DependencyError("payments: HTTP 503", 503)

    calls = 0
    with pytest.raises(DependencyError):
        retry(down, attempts=3, delay=0.1, sleep=sleeps.append)
    assert (calls, sleeps) == (3, [0.1, 0.2])


# -- the HTTP clients ------------------------------------------------------- #


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_http_clients_map_responses_and_errors(payments: DependencyServer) -> None:
    nowhere = f"http://127.0.0.1:{unused_port()}/"
    assert http_get(payments.url, timeout=2.0) == b"payments"
    assert asyncio.run(async_http_get(payments.url, timeout=2.0)) == b"payments"
    payments.mode, payments.retry_after = "down", 7

    def threaded(url: str) -> bytes:
        return http_get(url, timeout=2.0)

    def with_asyncio(url: str) -> bytes:
        return asyncio.run(async_http_get(url, timeout=2.0))

    for get in (threaded, with_asyncio):
        with pytest.raises(DependencyError) as raised:
            get(payments.url)
        assert (raised.value.status, raised.value.retry_after) == (503, 7.0)
        with pytest.raises(RequestError):
            get(payments.url + "missing")
        with pytest.raises(DependencyError) as refused:
            get(nowhere)
        assert refused.value.status is None
