"""Plain cache-aside: every request that misses reloads (the hazard)."""

from __future__ import annotations

from typing import cast

import redis

from snippets.lazy_loading.cache_stampede.store import Loader

__all__ = ["cache_aside_get"]


# --8<-- [start:naive]
def cache_aside_get(client: redis.Redis, key: str, load: Loader, ttl: float) -> str:
    """Plain cache-aside, kept for the tests: every caller that misses loads."""
    cached = cast("str | None", client.get(key))
    if cached is not None:
        return cached
    value, _version = load()  # N callers that missed run N loads
    client.set(key, value, px=int(ttl * 1000))  # the last one to finish wins
    return value


# --8<-- [end:naive]
