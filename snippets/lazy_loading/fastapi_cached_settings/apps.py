"""Four ways to give endpoints one `Settings`: one broken, three that hold.

Each function builds a fresh app with a cold cache, so a demo or a test can
watch its first requests race.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Annotated

from fastapi import Depends, FastAPI, Request

from snippets.lazy_loading.fastapi_cached_settings.settings import Settings
from snippets.lazy_loading.thread_safe_lazy_init import Once

__all__ = ["async_dependency_app", "lifespan_app", "locked_app", "lru_cache_app"]


def lru_cache_app() -> FastAPI:
    """The documented pattern: `@lru_cache` on a sync dependency (races)."""

    # --8<-- [start:lru-cache]
    @lru_cache
    def get_settings() -> Settings:  # a def dependency: runs on a pool thread
        return Settings()

    app = FastAPI()

    @app.get("/info")
    async def info(
        settings: Annotated[Settings, Depends(get_settings)],
    ) -> dict[str, int]:
        return {"settings": id(settings)}

    # --8<-- [end:lru-cache]
    return app


def lifespan_app() -> FastAPI:
    """Settings built at start-up, before the first request, on app.state."""

    # --8<-- [start:lifespan]
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = Settings()  # once, before the server accepts
        yield

    def get_settings(request: Request) -> Settings:
        settings: Settings = request.app.state.settings
        return settings

    app = FastAPI(lifespan=lifespan)

    @app.get("/info")
    async def info(
        settings: Annotated[Settings, Depends(get_settings)],
    ) -> dict[str, int]:
        return {"settings": id(settings)}

    # --8<-- [end:lifespan]
    return app


def locked_app() -> FastAPI:
    """A sync dependency that stays lazy, built once under a lock."""
    # --8<-- [start:locked]
    settings_once = Once(Settings)  # thread_safe_lazy_init.Once

    def get_settings() -> Settings:
        return settings_once.get()

    app = FastAPI()

    @app.get("/info")
    async def info(
        settings: Annotated[Settings, Depends(get_settings)],
    ) -> dict[str, int]:
        return {"settings": id(settings)}

    # --8<-- [end:locked]
    return app


def async_dependency_app() -> FastAPI:
    """The same `lru_cache`, called only from the event loop's thread."""

    # --8<-- [start:async]
    @lru_cache
    def load_settings() -> Settings:
        return Settings()

    async def get_settings() -> Settings:
        # async def: FastAPI calls it on the event loop, one at a time; no
        # await between the cache miss and the store, so no other request
        # can run in between.
        return load_settings()

    app = FastAPI()

    @app.get("/info")
    async def info(
        settings: Annotated[Settings, Depends(get_settings)],
    ) -> dict[str, int]:
        return {"settings": id(settings)}

    # --8<-- [end:async]
    return app
