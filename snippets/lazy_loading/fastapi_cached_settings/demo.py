"""The cases the FastAPI cached-settings page shows, on real uvicorn.

    python -m snippets.lazy_loading.fastapi_cached_settings.demo CASE

Cases: ``race`` (the `@lru_cache` dependency on a cold start) and ``fixes``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib.metadata import version

import anyio
import anyio.to_thread
from fastapi import FastAPI

from snippets.lazy_loading.fastapi_cached_settings.apps import (
    async_dependency_app,
    lifespan_app,
    locked_app,
    lru_cache_app,
)
from snippets.support.cases import run_cases
from snippets.support.lazy_loading_fastapi import first_requests, get, loads, serve

__all__: list[str] = []

REQUESTS = 8
# All 8 loads normally meet at once; the long bound only matters on a machine
# so busy that a request thread starts late.
RACE_HOLD = 10.0


def cold_start(
    make_app: Callable[[], FastAPI], hold: float = 1.0
) -> tuple[int, set[int], set[int]]:
    """Settings loads, and the Settings objects (by id) that the first burst
    of requests and the 3 requests after it got. Each load waits up to `hold`
    seconds for the other requests to start loading too."""
    with loads(REQUESTS, hold) as loaded, serve(make_app()) as url:
        burst = {reply["settings"] for reply in first_requests(url, REQUESTS)}
        later = {get(url)["settings"] for _ in range(3)}
    return loaded.count, burst, later


def thread_pool_size() -> int:
    async def tokens() -> int:
        return int(anyio.to_thread.current_default_thread_limiter().total_tokens)

    return anyio.run(tokens)


def show_race() -> list[str]:
    loaded, burst, later = cold_start(lru_cache_app, hold=RACE_HOLD)
    kept = later <= burst
    return [
        f"fastapi {version('fastapi')}, uvicorn {version('uvicorn')}, "
        f"anyio {version('anyio')}: thread pool of {thread_pool_size()}",
        f"{REQUESTS} first requests at once, @lru_cache def get_settings():",
        f"  Settings() ran: {loaded} times",
        f"  distinct Settings objects the first requests got: {len(burst)}",
        f"  distinct Settings objects the next 3 requests got: {len(later)}",
        f"  that one is among the first requests' objects: {'yes' if kept else 'no'}",
    ]


def show_fixes() -> list[str]:
    lines = [f"{REQUESTS} first requests at once; Settings() runs, objects handed out:"]
    for label, make_app in (
        ("built in lifespan, on app.state", lifespan_app),
        ("Once(Settings), a lock", locked_app),
        ("async def dependency", async_dependency_app),
    ):
        loaded, burst, later = cold_start(make_app)
        lines.append(f"  {label + ':':<34} {loaded} run, {len(burst | later)} object")
    return lines


if __name__ == "__main__":
    sys.exit(run_cases({"race": show_race, "fixes": show_fixes}))
