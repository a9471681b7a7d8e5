"""The broken loaders the page starts from: no sharing, or sticky errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["NaiveLoader", "PoisonedLoader"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


# --8<-- [start:naive]
class NaiveLoader(Generic[K, V]):
    """The broken version: check the cache, then fetch. No in-flight sharing."""

    def __init__(self, load: Callable[[K], Awaitable[V]]) -> None:
        self._load = load
        self._loaded: dict[K, V] = {}

    async def get(self, key: K) -> V:
        if key not in self._loaded:  # every caller that arrives now sees "absent"
            self._loaded[key] = await self._load(key)  # ... and each one fetches
        return self._loaded[key]


class PoisonedLoader(Generic[K, V]):
    """Shares the in-flight load but also keeps a failed one: errors stick."""

    def __init__(self, load: Callable[[K], Awaitable[V]]) -> None:
        self._load = load
        self._tasks: dict[K, asyncio.Task[V]] = {}

    async def get(self, key: K) -> V:
        if key not in self._tasks:
            self._tasks[key] = asyncio.ensure_future(self._load(key))
        return await asyncio.shield(self._tasks[key])  # a failed task re-raises


# --8<-- [end:naive]
