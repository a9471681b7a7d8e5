"""A Redis lock with a lease and a token-checked release."""

from __future__ import annotations

import secrets

import redis

__all__ = ["RELEASE", "RedisLock"]


# --8<-- [start:lock]
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLock:
    """A lock with a lease, for one Redis instance (not Redlock).

    ``acquire`` is ``SET key token NX PX ttl``: it succeeds only if nobody
    holds the key, and the lock disappears by itself after `ttl` seconds if
    its holder dies. ``release`` deletes the key only if it still holds the
    caller's token, so a holder whose lease ran out cannot delete the lock of
    the process that took over.
    """

    def __init__(self, client: redis.Redis, ttl: float) -> None:
        self._client = client
        self.ttl = ttl
        self._release = client.register_script(RELEASE)

    def acquire(self, key: str) -> str | None:
        """Take the lock if it is free; return its token, or None. Never waits."""
        token = secrets.token_hex(16)
        taken = self._client.set(key, token, nx=True, px=int(self.ttl * 1000))
        return token if taken else None

    def release(self, key: str, token: str) -> bool:
        """Delete the lock if it is still ours; False if the lease had expired."""
        return bool(self._release(keys=[key], args=[token]))


# --8<-- [end:lock]
