"""Cache entries with a version, soft expiry and early refresh, and the policy."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import cast

import redis

__all__ = ["INVALIDATE", "STORE", "Entry", "Policy", "read_entry", "refresh_due"]


# --8<-- [start:versioned]
STORE = """
local current = tonumber(redis.call('HGET', KEYS[1], 'version'))
if current and current > tonumber(ARGV[1]) then
    return 0
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'value', ARGV[2],
           'delta', ARGV[3], 'stale', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""

INVALIDATE = """
local current = tonumber(redis.call('HGET', KEYS[1], 'version'))
if current and current >= tonumber(ARGV[1]) then
    return 0
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'version', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
# --8<-- [end:versioned]


# --8<-- [start:entry]
@dataclass(frozen=True)
class Entry:
    """A cache entry as read from Redis.

    Attributes:
        value: The cached value; None for a tombstone left by `invalidate`.
        version: The backing store's version of the value.
        delta: Seconds the load that produced the value took.
        fresh_for: Seconds until the soft expiry; negative once it passed.
    """

    value: str | None
    version: int
    delta: float
    fresh_for: float


def read_entry(client: redis.Redis, key: str) -> Entry | None:
    """Read an entry and its remaining lifetime in one round trip."""
    with client.pipeline(transaction=True) as pipe:
        pipe.hgetall(key)
        pipe.pttl(key)
        fields, pttl = cast("tuple[dict[str, str], int]", tuple(pipe.execute()))
    if not fields or pttl < 0:
        return None
    stale = float(fields.get("stale", 0))
    return Entry(
        value=fields.get("value"),
        version=int(fields["version"]),
        delta=float(fields.get("delta", 0)),
        fresh_for=pttl / 1000 - stale,
    )


# --8<-- [end:entry]


# --8<-- [start:early]
def refresh_due(
    fresh_for: float, delta: float, beta: float, rng: random.Random
) -> bool:
    """Whether this read should refresh the value now.

    Past the soft expiry, always. Before it, with a probability that grows as
    the expiry nears: the read draws a head start from an exponential
    distribution with mean ``delta * beta`` (the last load's duration times
    an eagerness factor) and refreshes if the head start reaches the expiry.
    A value that takes longer to load starts refreshing earlier.
    """
    if fresh_for <= 0:
        return True
    if beta <= 0 or delta <= 0:
        return False
    head_start = -delta * beta * math.log(1.0 - rng.random())  # 1 - U is in (0, 1]
    return head_start >= fresh_for


# --8<-- [end:early]


# --8<-- [start:policy]
@dataclass(frozen=True)
class Policy:
    """How long values live and how callers coordinate.

    Attributes:
        ttl: Seconds a value is fresh (its soft TTL), before jitter.
        stale_for: Seconds a value may still be served after its soft TTL
            while one caller refreshes it. The Redis key lives
            ``ttl + stale_for`` seconds.
        jitter: Each stored TTL is multiplied by a random factor in
            ``1 ± jitter``, so keys written together do not expire together.
        beta: Eagerness of the early refresh; 0 refreshes at the soft expiry.
        lock_ttl: Lease of the cross-process lock, in seconds; longer than a
            load normally takes. None: no lock, single-flight per process only.
        wait: Seconds a caller without any value waits for another's load.
    """

    ttl: float = 60.0
    stale_for: float = 30.0
    jitter: float = 0.1
    beta: float = 1.0
    lock_ttl: float | None = 5.0
    wait: float = 10.0


# --8<-- [end:policy]
