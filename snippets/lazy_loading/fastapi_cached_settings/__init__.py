"""FastAPI cached settings: one `Settings` per process, built before it races.

FastAPI runs a sync dependency in a thread pool, and `functools.lru_cache`
does not lock around the call it caches: on a cold start every request that
misses builds its own `Settings`.

* `lru_cache_app` is the broken version, the pattern as usually written.
* `lifespan_app` builds the settings at start-up and keeps them on
  ``app.state``.
* `locked_app` keeps them lazy, built once under a lock (`Once`).
* `async_dependency_app` calls the cached function from an ``async def``
  dependency, so only the event loop's thread ever calls it.
"""

from snippets.lazy_loading.fastapi_cached_settings.apps import (
    async_dependency_app,
    lifespan_app,
    locked_app,
    lru_cache_app,
)
from snippets.lazy_loading.fastapi_cached_settings.settings import Settings

__all__ = [
    "Settings",
    "async_dependency_app",
    "lifespan_app",
    "locked_app",
    "lru_cache_app",
]
