"""Tests for snippets/lazy_loading/fastapi_cached_settings, on real uvicorn.

Each app is served by uvicorn on 127.0.0.1 and sent a burst of first requests
from threads released together. Settings loads are counted from their log
record, and each load is held until all racers are inside (or one second has
passed), so the cold-start race happens on every run.
"""

from __future__ import annotations

import asyncio
import http.client
import platform
import threading
from collections.abc import Callable
from functools import lru_cache
from urllib.parse import urlsplit

import pytest
from fastapi import Depends, FastAPI

from snippets.lazy_loading.fastapi_cached_settings import (
    Settings,
    async_dependency_app,
    lifespan_app,
    locked_app,
    lru_cache_app,
)
from snippets.lazy_loading.fastapi_cached_settings.demo import (
    RACE_HOLD,
    REQUESTS,
    cold_start,
    thread_pool_size,
)
from snippets.support.lazy_loading_fastapi import first_requests, get, loads, serve
from tools.errors import ErrorRecorder


def test_lru_cache_dependency_builds_settings_once_per_racing_request() -> None:
    """See it break: 8 cold requests, 8 Settings() runs, 8 different objects."""
    loaded, burst, later = cold_start(lru_cache_app, hold=RACE_HOLD)
    assert loaded == REQUESTS
    assert len(burst) == REQUESTS
    # Afterwards the cache hands out one object: one the racers built.
    assert len(later) == 1
    assert later <= burst


def test_the_racers_are_thread_pool_threads() -> None:
    with loads(REQUESTS, RACE_HOLD) as loaded, serve(lru_cache_app()) as url:
        first_requests(url, REQUESTS)
    assert len(loaded.threads) == REQUESTS
    assert threading.get_ident() not in loaded.threads


def test_sync_dependencies_share_a_pool_of_40_threads() -> None:
    assert thread_pool_size() == 40


@pytest.mark.parametrize(
    "make_app",
    [lifespan_app, locked_app, async_dependency_app],
    ids=lambda make_app: make_app.__name__,
)
def test_fix_builds_settings_once(make_app: Callable[[], FastAPI]) -> None:
    loaded, burst, later = cold_start(make_app)
    assert loaded == 1
    assert len(burst | later) == 1


def test_lifespan_builds_settings_before_the_first_request() -> None:
    with loads(1, hold=0) as loaded, serve(lifespan_app()) as url:
        assert loaded.count == 1  # the server is up, no request sent yet
        get(url)
    assert loaded.count == 1


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERS_POOL_SIZE", "25")
    assert Settings().pool_size == 25


def test_lru_cache_on_an_async_def_caches_a_coroutine(
    error_record: ErrorRecorder,
) -> None:
    """The trap on the way to the async fix: cache the sync loader instead."""

    @lru_cache
    async def get_settings() -> Settings:
        return Settings()

    async def twice() -> None:
        await get_settings()
        await get_settings()

    with pytest.raises(
        RuntimeError, match="cannot reuse already awaited coroutine"
    ) as caught:
        asyncio.run(twice())
    error_record(
        caught.value,
        id="awaited-coroutine",
        section="async-dependency",
        component="CPython",
        version=platform.python_version(),
    )

    app = FastAPI()

    @app.get("/info")
    async def info(settings: Settings = Depends(get_settings)) -> dict[str, int]:  # noqa: B008
        return {"settings": id(settings)}

    get_settings.cache_clear()
    with serve(app) as url:
        get(url)  # the first request awaits the cached coroutine
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
        conn.request("GET", "/info")  # the second awaits it again
        assert conn.getresponse().status == 500
        conn.close()
