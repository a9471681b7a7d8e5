"""The cases the bulkheads-and-circuit-breakers page shows.

    python -m snippets.container_orchestration.bulkheads_and_circuit_breakers.demo CASE

Each case runs against `DependencyServer`s on loopback and prints counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from concurrent.futures import wait
from dataclasses import dataclass

from snippets.container_orchestration.bulkheads_and_circuit_breakers import (
    AsyncBulkhead,
    AsyncGateway,
    Bulkhead,
    BulkheadFull,
    BulkheadGateway,
    CircuitBreaker,
    CircuitOpenError,
    DependencyError,
    Gateway,
    State,
    http_get,
    retry,
)
from snippets.support.cases import run_cases
from snippets.support.container_orchestration_dependency import (
    DependencyServer,
    ManualClock,
    wait_until,
)

# The demos: each returns counts; the tests assert on them, the page shows them
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Isolation:
    """What the healthy dependency got while the other one hung."""

    label: str
    answered: int  # catalog calls answered within the deadline
    held: int  # workers (or permits) that payments held
    rejected: int  # payments calls its bulkhead turned away
    catalog_hits: int  # catalog requests that reached catalog at all
    unit: str = "workers"

    def line(self) -> str:
        """One line of the page's output."""
        text = (
            f"{self.label:<15} catalog {self.answered}/{CATALOG_CALLS} answered "
            f"in time; payments holds {self.held} of {POOL} {self.unit}"
        )
        return text + (f", {self.rejected} rejected" if self.rejected else "")


# The deadline is far above a healthy answer (a millisecond here) so that a
# busy machine still answers in time; a held worker never answers at all.
PAYMENTS_CALLS, CATALOG_CALLS, POOL, SLOTS, DEADLINE = 8, 4, 8, 4, 2


def isolation_lines(capacity: str, without: Isolation, with_: Isolation) -> list[str]:
    """The isolation demo as the page shows it."""
    return [
        f"{capacity}; {PAYMENTS_CALLS} calls to payments (hangs), "
        f"then {CATALOG_CALLS} to catalog (deadline {DEADLINE} s)",
        without.line(),
        with_.line(),
    ]


# --8<-- [start:demo-isolation]
def isolation_demo(bulkheads: bool) -> Isolation:
    """8 calls to a hanging `payments`, then 4 to a healthy `catalog`."""
    with (
        DependencyServer("payments", mode="hang") as payments,
        DependencyServer("catalog") as catalog,
    ):
        slow = Bulkhead("payments", SLOTS, acquire_timeout=0.05)
        healthy = Bulkhead("catalog", SLOTS, acquire_timeout=0.05)
        gateway = (
            BulkheadGateway(POOL, 5.0, {"payments": slow, "catalog": healthy})
            if bulkheads
            else Gateway(POOL, call_timeout=5.0)
        )
        try:
            for _ in range(PAYMENTS_CALLS):
                with contextlib.suppress(BulkheadFull):
                    gateway.submit("payments", payments.url)
            # Every payments call is now either rejected or held by payments.
            wait_until(lambda: payments.hits + slow.rejected >= PAYMENTS_CALLS, 5)
            calls = [
                gateway.submit("catalog", catalog.url) for _ in range(CATALOG_CALLS)
            ]
            done, late = wait(calls, timeout=DEADLINE)
            for call in late:
                call.cancel()  # the caller gave up: never run it
            answered = sum(1 for call in done if call.exception() is None)
            held = payments.hits
        finally:
            payments.release()
            gateway.close()
    label = "with bulkheads:" if bulkheads else "shared pool:"
    return Isolation(label, answered, held, slow.rejected, catalog.hits)


# --8<-- [end:demo-isolation]


async def _async_isolation(bulkheads: bool) -> Isolation:
    with (
        DependencyServer("payments", mode="hang") as payments,
        DependencyServer("catalog") as catalog,
    ):
        slow = AsyncBulkhead("payments", SLOTS, acquire_timeout=0.05)
        healthy = AsyncBulkhead("catalog", SLOTS, acquire_timeout=0.05)
        gateway = AsyncGateway(
            POOL, 5.0, {"payments": slow, "catalog": healthy} if bulkheads else None
        )
        pending = [
            asyncio.create_task(gateway.call("payments", payments.url, deadline=10))
            for _ in range(PAYMENTS_CALLS)
        ]
        for _ in range(1000):  # at most ~5 s: each call rejected or held
            if payments.hits + slow.rejected >= PAYMENTS_CALLS:
                break
            await asyncio.sleep(0.005)
        held = payments.hits
        calls = [
            gateway.call("catalog", catalog.url, DEADLINE) for _ in range(CATALOG_CALLS)
        ]
        results = await asyncio.gather(*calls, return_exceptions=True)
        payments.release()
        await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 10)
    answered = sum(1 for result in results if isinstance(result, bytes))
    label = "with bulkheads:" if bulkheads else "shared limit:"
    return Isolation(label, answered, held, slow.rejected, catalog.hits, "permits")


def async_isolation_demo(bulkheads: bool) -> Isolation:
    """The asyncio version: one shared limit of 8, or bulkheads of 4 each."""
    return asyncio.run(_async_isolation(bulkheads))


CALLERS, ATTEMPTS, DOWN_FOR, SECONDS = 10, 3, 8, 12


# --8<-- [start:demo-storm]
def retry_storm(use_breaker: bool) -> list[int]:
    """Requests reaching `payments` each second while it is down, then back.

    Every second each of 10 callers makes one request with up to 3 attempts.
    `payments` answers 503 for the first 8 seconds. The clock is manual, so
    the cool-down is exact and the run takes no real time.
    """
    clock = ManualClock()
    breaker = CircuitBreaker(
        "payments", failure_threshold=3, reset_timeout=5.0, clock=clock
    )
    per_second = []
    with DependencyServer("payments", mode="down") as payments:

        def attempt() -> bytes:
            return http_get(payments.url, timeout=2.0)

        def request() -> bytes:
            return breaker.call(attempt) if use_breaker else attempt()

        for second in range(SECONDS):
            payments.mode = "down" if second < DOWN_FOR else "up"
            before = payments.hits
            for _ in range(CALLERS):
                with contextlib.suppress(DependencyError, CircuitOpenError):
                    retry(request, attempts=ATTEMPTS)
            per_second.append(payments.hits - before)
            clock.advance(1.0)
    return per_second


# --8<-- [end:demo-storm]


def storm_lines(without: list[int], with_breaker: list[int]) -> list[str]:
    """The storm as the page shows it: one column per second."""

    def row(label: str, counts: list[int]) -> str:
        cells = " ".join(f"{count:>2}" for count in counts)
        return f"  {label:<13}{cells}   ({sum(counts[:DOWN_FOR])} while down)"

    return [
        f"payments answers 503 for t=0..{DOWN_FOR - 1} s and is back at t={DOWN_FOR} s",
        f"{CALLERS} callers, one request a second each, up to {ATTEMPTS} attempts",
        "requests reaching payments, per second:",
        row("no breaker", without),
        row("with breaker", with_breaker),
    ]


@dataclass(frozen=True)
class Herd:
    """What a recovering dependency saw when many callers arrived at once."""

    reached: int  # requests that reached the dependency
    failed_fast: int  # callers the breaker turned away
    succeeded: int
    state: State  # the breaker's state afterwards


HERD = 20


def recovery_herd(use_breaker: bool) -> Herd:
    """20 callers arrive together while `payments` is recovering (slow).

    With the breaker, its cool-down has just passed: it is half-open. The
    recovering server holds every request until each caller has either
    reached it or failed fast, then answers them all.
    """
    clock = ManualClock()
    breaker = CircuitBreaker(
        "payments", failure_threshold=3, reset_timeout=5.0, clock=clock
    )
    outcomes: list[str] = []
    lock = threading.Lock()
    with DependencyServer("payments", mode="down") as payments:

        def attempt() -> bytes:
            return http_get(payments.url, timeout=10.0)

        def request() -> bytes:
            return breaker.call(attempt) if use_breaker else attempt()

        if use_breaker:
            for _ in range(3):  # three failures open the breaker
                with contextlib.suppress(DependencyError):
                    request()
            clock.advance(5.0)  # the cool-down passes: half-open
        payments.mode, before = "hang", payments.hits
        start = threading.Barrier(HERD)

        def caller() -> None:
            start.wait(timeout=5)
            try:
                request()
                outcome = "ok"
            except CircuitOpenError:
                outcome = "fast"
            except DependencyError:
                outcome = "failed"
            with lock:
                outcomes.append(outcome)

        threads = [threading.Thread(target=caller) for _ in range(HERD)]
        for thread in threads:
            thread.start()
        wait_until(lambda: len(outcomes) + payments.hits - before >= HERD, timeout=10)
        reached = payments.hits - before
        payments.release()
        for thread in threads:
            thread.join(timeout=10)
    return Herd(reached, outcomes.count("fast"), outcomes.count("ok"), breaker.state)


def herd_lines(without: Herd, with_breaker: Herd) -> list[str]:
    """The recovery herd as the page shows it."""
    return [
        f"{HERD} callers at once while payments recovers:",
        f"  no breaker    {without.reached:>2} requests reached payments",
        f"  with breaker  {with_breaker.reached:>2} request reached payments "
        f"(the trial call), {with_breaker.failed_fast} failed fast",
        f"breaker after the trial call: {with_breaker.state.value}",
    ]


def show_isolation() -> list[str]:
    pool = f"a pool of {POOL} workers"
    return isolation_lines(pool, isolation_demo(False), isolation_demo(True))


def show_isolation_async() -> list[str]:
    limit = f"one limit of {POOL} permits"
    runs = async_isolation_demo(False), async_isolation_demo(True)
    return isolation_lines(limit, *runs)


def show_storm() -> list[str]:
    return storm_lines(retry_storm(False), retry_storm(True))


def show_herd() -> list[str]:
    return herd_lines(recovery_herd(False), recovery_herd(True))


if __name__ == "__main__":
    sys.exit(
        run_cases(
            {
                "herd": show_herd,
                "isolation": show_isolation,
                "isolation_async": show_isolation_async,
                "storm": show_storm,
            }
        )
    )
