"""The cases the retry-schedule page shows.

``python -m snippets.webhook_design.retry_schedule.demo herd`` fails 100
deliveries during a 60 s outage under three policies and counts what the
recovered receiver gets; ``... demo schedule`` draws one full-jitter wait for
each of the Standard Webhooks ceilings. Time is virtual, the requests are real.
"""

from __future__ import annotations

import math
import random
import sqlite3
import sys
import threading
from collections import Counter
from collections.abc import Mapping
from contextlib import closing
from typing import Final

from snippets.support.cases import run_cases
from snippets.support.webhook_design_clock import VirtualClock
from snippets.support.webhook_design_endpoint import Receiver, Reply
from snippets.webhook_design.retry_schedule import RetryDispatcher, RetryPolicy

__all__: list[str] = []


# --8<-- [start:herd]
def herd(
    policy: RetryPolicy, deliveries: int = 100, outage: float = 60.0
) -> list[float]:
    """Arrival times (s) at a receiver that answers 503 for the first ``outage`` s.

    Every delivery is enqueued at t=0 and fails while the receiver is down.
    Time is virtual, so nothing waits; the requests are real.
    """
    clock = VirtualClock()
    start = clock.now()

    def answer(n: int, now: float) -> Reply:
        return Reply(503 if now - start < outage else 200)

    with (
        Receiver(answer, clock.now) as receiver,
        closing(sqlite3.connect(":memory:")) as db,
    ):
        dispatcher = RetryDispatcher(
            db, policy, clock=clock, rng=random.Random(7), timeout=5.0
        )
        for n in range(deliveries):
            dispatcher.enqueue(receiver.url, b'{"type":"invoice.paid"}', f"msg_{n}")
        dispatcher.run(threading.Event(), until_idle=True, max_wait=math.inf)
    return [arrival.at - start for arrival in receiver.arrivals]


def per_second(arrivals: list[float], since: float = 0.0) -> Counter[int]:
    """Requests per one-second bucket, counting arrivals at or after ``since``."""
    return Counter(int(at) for at in arrivals if at >= since)


# --8<-- [end:herd]


# --8<-- [start:demo]
POLICIES: Final = {
    "fixed 30 s, no jitter": RetryPolicy((30.0,) * 8, jitter=False),
    "exponential, no jitter": RetryPolicy.exponential(5, 3_600, 8, jitter=False),
    "exponential, full jitter": RetryPolicy.exponential(5, 3_600, 8),
}


def show_herd(outage: float = 60.0) -> list[str]:
    """100 deliveries fail during a 60 s outage; one line per policy."""
    runs = {name: herd(policy, outage=outage) for name, policy in POLICIES.items()}
    return summarize(runs, outage)


def summarize(runs: Mapping[str, list[float]], outage: float = 60.0) -> list[str]:
    """A table: requests, the busiest second after recovery, the last arrival."""
    lines = ["policy                    requests  busiest second  last delivery"]
    lines.append("                                    after recovery")
    for name, arrivals in runs.items():
        busiest = max(per_second(arrivals, since=outage).values())
        last = max(arrivals)
        lines.append(f"{name:<25} {len(arrivals):>8}  {busiest:>14}  {last:>11.0f} s")
    return lines


# --8<-- [end:demo]


# --8<-- [start:table]
def show_schedule(seed: int = 7) -> list[str]:
    """Standard Webhooks' ceilings and one seeded draw of full jitter."""
    policy, rng = RetryPolicy(), random.Random(seed)
    lines = ["retry   ceiling  drawn wait"]
    for attempt, ceiling in enumerate(policy.schedule, start=1):
        wait = policy.delay(attempt, rng)
        assert wait is not None
        lines.append(f"{attempt:>5}  {_human(ceiling):>8}  {_human(wait):>10}")
    return lines


def _human(seconds: float) -> str:
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


# --8<-- [end:table]


if __name__ == "__main__":
    sys.exit(run_cases({"herd": show_herd, "schedule": show_schedule}))
