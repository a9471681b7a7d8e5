"""The fan-out sender: every event to every endpoint, each in its own lane."""

from __future__ import annotations

import time
from collections.abc import Sequence
from types import TracebackType

from snippets.webhook_design.per_endpoint_isolation.breaker import CircuitBreaker
from snippets.webhook_design.per_endpoint_isolation.lane import (
    Delivery,
    Endpoint,
    Lane,
    ResultHook,
)
from snippets.webhook_design.retry_schedule import RetryPolicy

__all__ = ["FanOutSender"]


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
