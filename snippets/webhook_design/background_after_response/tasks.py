"""Fire-and-forget tasks that the garbage collector cannot take away."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

__all__ = ["TaskSet"]


# --8<-- [start:taskset]
class TaskSet:
    """Strong references to running tasks, dropped when each one finishes.

    The event loop keeps only weak references to tasks. A task that nothing
    else refers to can be collected while it waits, and its work never
    finishes. Keep one `TaskSet` per application, not per request.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def __len__(self) -> int:
        return len(self._tasks)

    async def drain(self, timeout: float) -> int:
        """Wait up to `timeout` s for running tasks; return how many remain."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        return len(self._tasks)


# --8<-- [end:taskset]
