"""A model of early refresh: reloads that uncoordinated processes start."""

from __future__ import annotations

import random

from snippets.lazy_loading.cache_stampede.entry import refresh_due

__all__ = ["simulate_expiry"]


# --8<-- [start:simulate]
def simulate_expiry(
    processes: int,
    beta: float,
    rng: random.Random,
    *,
    ttl: float = 10.0,
    delta: float = 0.5,
    tick: float = 0.05,
) -> tuple[int, float]:
    """Count the reloads that uncoordinated processes start around one expiry.

    Each process reads the key once per `tick` and decides with
    `refresh_due`, with no lock. A reload takes `delta` seconds, and until
    the first one finishes every read still sees the old entry. Returns the
    reloads started in that window and how long before the expiry the first
    one started.
    """
    first: float | None = None
    started = 0
    step = 0
    while first is None or step * tick < first + delta:
        now = step * tick
        for _ in range(processes):
            if refresh_due(ttl - now, delta, beta, rng):
                started += 1
                first = now if first is None else first
        step += 1
    return started, ttl - first


# --8<-- [end:simulate]
