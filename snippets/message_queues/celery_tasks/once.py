"""Two ways to stop a Celery task's effect from happening twice, on Redis.

Celery delivers at least once: with ``task_acks_late`` a task whose worker dies
runs again, and on the Redis broker an ETA task can come back after the
visibility timeout. A lock with an expiry only keeps two copies from running at
the same moment; a marker on the business key, written in the same atomic step
as the effect, makes the second copy a no-op whenever it arrives.
"""

from __future__ import annotations

import uuid

import redis

__all__ = ["DEDUPE_SECONDS", "charge_once", "charge_under_lock"]

# Keep markers longer than any copy of a task can arrive: retries, ETAs, a
# replay from a dead-letter queue.
DEDUPE_SECONDS = 7 * 24 * 3600

# --8<-- [start:lock]
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def charge_under_lock(
    client: redis.Redis, order: str, amount: int, balance: str, *, ttl: float
) -> bool:
    """Charge ``amount`` while holding ``lock:<order>`` for at most ``ttl`` s.

    Returns False when another run holds the lock. Once the first run has
    released it, or ``ttl`` has passed, a second copy charges again.
    """
    lock, token = f"{balance}:lock:{order}", uuid.uuid4().hex
    if not client.set(lock, token, nx=True, px=int(ttl * 1000)):
        return False
    try:
        client.incrby(balance, amount)  # the effect
    finally:
        client.eval(_RELEASE, 1, lock, token)  # only our own lock
    return True


# --8<-- [end:lock]

# --8<-- [start:dedupe]
_CHARGE_ONCE = """
if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'EX', ARGV[3]) then
    redis.call('INCRBY', KEYS[2], ARGV[1])
    return 1
end
return 0
"""


def charge_once(
    client: redis.Redis, order: str, amount: int, balance: str, *, task_id: str
) -> bool:
    """Charge ``amount`` for ``order`` once, however many copies run.

    The marker ``done:<order>`` and the charge are one Lua script, which Redis
    runs atomically: both happen or neither does, and a copy that finds the
    marker changes nothing. Returns whether this copy charged.
    """
    marker = f"{balance}:done:{order}"
    args = (amount, task_id, DEDUPE_SECONDS)
    return bool(client.eval(_CHARGE_ONCE, 2, marker, balance, *args))


# --8<-- [end:dedupe]
