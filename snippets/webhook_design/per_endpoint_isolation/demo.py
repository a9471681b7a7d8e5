"""The cases the per-endpoint-isolation page shows.

``python -m snippets.webhook_design.per_endpoint_isolation.demo shared``
publishes 20 events to four real endpoints (two healthy, one failing, one
that hangs) through one shared queue and pool; ``... demo lanes`` does the
same through per-endpoint lanes. Both count what the healthy endpoints have
received when the hanging endpoint's first request times out.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Final

from snippets.support.cases import run_cases
from snippets.support.webhook_design_endpoint import Receiver, Reply
from snippets.webhook_design.per_endpoint_isolation import (
    Delivery,
    Endpoint,
    FanOutSender,
    Lane,
    State,
)
from snippets.webhook_design.per_endpoint_isolation.broken import SharedQueueSender
from snippets.webhook_design.retry_schedule import Response

__all__: list[str] = []

EVENTS: Final = 20
TIMEOUT: Final = 1.0  # seconds per request in the demo
PER_LANE: Final = 2  # requests in flight per endpoint with lanes
HEALTHY: Final = ("healthy-a", "healthy-b")

Run = tuple[Counter[str], dict[str, Lane]]


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


def sender_for(
    isolated: bool, endpoints: list[Endpoint], on_result: Callable[..., None]
) -> FanOutSender | SharedQueueSender:
    """Lanes with ``PER_LANE`` workers each, or one pool with as many in all."""
    if isolated:
        return FanOutSender(
            endpoints,
            max_in_flight=PER_LANE,
            timeout=TIMEOUT,
            failure_threshold=3,
            on_result=on_result,
        )
    workers = PER_LANE * len(endpoints)
    return SharedQueueSender(
        endpoints, workers=workers, timeout=TIMEOUT, on_result=on_result
    )


# --8<-- [start:scenario]
def when_slow_times_out(isolated: bool) -> Run:
    """Publish EVENTS events; count healthy receipts at the slow one's 1st timeout.

    Returns the counts, and the lanes (none for the shared queue) once the
    healthy endpoints have every event and both bad endpoints' breakers are open.
    """
    snapshot: Counter[str] = Counter()
    timed_out, settled, first = threading.Event(), threading.Event(), threading.Lock()
    lanes: dict[str, Lane] = {}

    def on_result(endpoint: Endpoint, delivery: Delivery, response: Response) -> None:
        with first:
            if endpoint.name == "slow" and not timed_out.is_set():
                snapshot.update({n: len(receivers[n].arrivals) for n in HEALTHY})
                timed_out.set()
        if lanes and _settled(lanes):
            settled.set()

    with subscribers() as receivers:
        endpoints = [Endpoint(name, r.url) for name, r in receivers.items()]
        sender = sender_for(isolated, endpoints, on_result)
        if isinstance(sender, FanOutSender):
            lanes.update(sender.lanes)
        sender.start()
        for n in range(EVENTS):
            sender.publish(f"evt_{n:02}", b'{"type":"invoice.paid"}')
        timed_out.wait(timeout=30)
        if isolated:
            settled.wait(timeout=30)
    sender.close()  # the receivers are gone and no longer hang: this is quick
    return snapshot, lanes


# --8<-- [end:scenario]


def _settled(lanes: dict[str, Lane]) -> bool:
    healthy = all(lanes[n].stats.delivered == EVENTS for n in HEALTHY)
    tripped = all(lanes[n].breaker.state is State.OPEN for n in ("failing", "slow"))
    idle = all(lane.in_flight == 0 for lane in lanes.values())
    return healthy and tripped and idle


def summarize(title: str, run: Run) -> list[str]:
    """Healthy endpoints' receipts at the slow one's first timeout; breakers."""
    snapshot, lanes = run
    counts = ", ".join(f"{n} {snapshot[n]}/{EVENTS}" for n in sorted(snapshot))
    lines = [title, f"  at the slow endpoint's first timeout: {counts}"]
    for name in ("failing", "slow"):
        if name in lanes:
            lane = lanes[name]
            lines.append(
                f"  {name + ':':<8} breaker {lane.breaker.state.value}, "
                f"{lane.stats.delivered}/{EVENTS} delivered, {lane.waiting} waiting"
            )
    return lines


def show_shared() -> list[str]:
    title = f"one shared queue, {PER_LANE * 4} workers"
    return summarize(title, when_slow_times_out(isolated=False))


def show_lanes() -> list[str]:
    title = f"per-endpoint lanes, {PER_LANE} workers each, with breakers"
    return summarize(title, when_slow_times_out(isolated=True))


if __name__ == "__main__":
    sys.exit(run_cases({"shared": show_shared, "lanes": show_lanes}))
