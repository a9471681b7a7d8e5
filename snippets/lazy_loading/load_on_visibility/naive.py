"""The broken loader: every answer is shown, in the order it arrives."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["NaiveLoader"]

K = TypeVar("K")
T = TypeVar("T")


# --8<-- [start:naive]
class NaiveLoader(Generic[K, T]):
    """The broken version: one load per request, and every answer is shown.

    Whichever answer arrives last stays on screen, even when it answers an
    older request. Every load runs to the end, needed or not.
    """

    debounce = 0.0

    def __init__(
        self, fetch: Callable[[K], Awaitable[T]], show: Callable[[K, T], None]
    ) -> None:
        self._fetch = fetch
        self._show = show
        self._tasks: set[asyncio.Task[None]] = set()

    def request(self, key: K) -> asyncio.Task[None]:
        """Start loading `key`; its answer is shown whenever it arrives."""
        task = asyncio.create_task(self._load(key))
        self._tasks.add(task)  # the event loop keeps only a weak reference
        task.add_done_callback(self._tasks.discard)
        return task

    async def _load(self, key: K) -> None:
        self._show(key, await self._fetch(key))  # no check: last answer wins

    async def aclose(self) -> None:
        """Cancel the loads still running and wait for them."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


# --8<-- [end:naive]
