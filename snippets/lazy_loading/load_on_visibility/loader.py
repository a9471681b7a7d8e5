"""Latest-wins loading: show only the newest answer, cancel the rest."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

__all__ = ["LatestLoader", "Loader"]

K = TypeVar("K")
T = TypeVar("T")


class Loader(Protocol):
    """What the demo needs from a loader: start a request, and shut down."""

    debounce: float

    def request(self, key: str) -> asyncio.Task[None]: ...

    async def aclose(self) -> None: ...


# --8<-- [start:latest]
class LatestLoader(Generic[K, T]):
    """Loads on demand and shows only the answer to the newest request.

    Every `request()` starts a new generation. An answer (or an error) is
    shown only if its generation is still the newest when it arrives, so a
    slow old answer can never replace a newer one. With `cancel_superseded`
    the older load is cancelled too, which closes its connection.

    Args:
        fetch: Loads one key. It must give up when its task is cancelled.
        show: Puts an answer on screen; called for the newest request only.
        show_error: Called when the newest request fails or times out. When
            None, the exception ends that request's task.
        timeout: Seconds one load may take, debounce not included.
        debounce: Seconds to wait before sending; a newer request in that
            time replaces this one without a request to the server.
        cancel_superseded: Cancel a load as soon as a newer request starts.
    """

    def __init__(
        self,
        fetch: Callable[[K], Awaitable[T]],
        show: Callable[[K, T], None],
        *,
        show_error: Callable[[K, Exception], None] | None = None,
        timeout: float = 10.0,
        debounce: float = 0.0,
        cancel_superseded: bool = True,
    ) -> None:
        self._fetch, self._show, self._show_error = fetch, show, show_error
        self._timeout, self.debounce = timeout, debounce
        self._cancel_superseded = cancel_superseded
        self.generation = 0
        self.shown = self.discarded = self.cancelled = 0
        self._current: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # --8<-- [end:latest]

    # --8<-- [start:request]
    def request(self, key: K) -> asyncio.Task[None]:
        """Load `key` and show it, replacing whatever was requested before."""
        self.generation += 1
        if self._cancel_superseded and self._current is not None:
            self._current.cancel()  # does nothing if it has finished
        task = asyncio.create_task(self._load(self.generation, key))
        self._current = task
        self._tasks.add(task)  # the event loop keeps only a weak reference
        task.add_done_callback(self._finished)
        return task

    def cancel(self) -> None:
        """Want nothing any more: the panel closed, the row scrolled away."""
        self.generation += 1  # an answer already on its way is not shown
        if self._current is not None:
            self._current.cancel()
            self._current = None

    # --8<-- [end:request]

    # --8<-- [start:load]
    async def _load(self, generation: int, key: K) -> None:
        try:
            if self.debounce > 0:
                await asyncio.sleep(self.debounce)
                if generation != self.generation:
                    return  # replaced during the pause: nothing was sent
            async with asyncio.timeout(self._timeout):
                result = await self._fetch(key)
        except Exception as error:  # includes TimeoutError, not cancellation
            if generation != self.generation:
                self.discarded += 1  # a newer request exists: drop this error
                return
            if self._show_error is None:
                raise
            self._show_error(key, error)
            return
        # Nothing is awaited between this check and show(): no other task
        # can start a newer request in between.
        if generation != self.generation:
            self.discarded += 1  # latest-wins: a newer request exists
            return
        self.shown += 1
        self._show(key, result)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():  # also counts tasks cancelled before they ran
            self.cancelled += 1

    # --8<-- [end:load]

    async def aclose(self) -> None:
        """Cancel every load still running and wait until they have ended."""
        self.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
