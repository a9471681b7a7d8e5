"""Warm likely-needed parts in the background without delaying the needed one.

A loader with a fixed number of fetch slots (connections, worker threads)
serves two kinds of request:

* a *critical* load: the caller waits for the part right now;
* a *prefetch*: a guess that the part will be needed soon.

`FifoLoader` is the broken version: one queue, first come first served, so a
burst of prefetches occupies every slot and the critical load waits behind
them (head-of-line blocking). `PriorityLoader` gives critical loads the next
free slot, starts prefetches only on idle slots, and cancels a running
prefetch (and queues it again) when a critical load finds no free slot.
Both share one in-flight future per part, so a part is never fetched twice at
the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
from collections import deque
from collections.abc import Awaitable, Callable

from snippets.support.cases import run_cases

__all__ = ["Fetch", "PriorityLoader"]

Fetch = Callable[[str], Awaitable[bytes]]


# --8<-- [start:fifo]
class FifoLoader:
    """One FIFO queue feeding ``slots`` fetchers (the hazard).

    Args:
        fetch: Coroutine function that downloads one part.
        slots: How many fetches may run at once.
    """

    def __init__(self, fetch: Fetch, slots: int = 4) -> None:
        self._fetch = fetch
        self._queue: asyncio.Queue[tuple[str, asyncio.Future[bytes]]]
        self._queue = asyncio.Queue()
        self._parts: dict[str, asyncio.Future[bytes]] = {}
        self._workers = [asyncio.create_task(self._work()) for _ in range(slots)]

    def prefetch(self, name: str) -> None:
        """Queue ``name`` behind everything already queued."""
        self._submit(name)

    async def load(self, name: str) -> bytes:
        """Queue ``name`` like a prefetch, then wait for it."""
        return await asyncio.shield(self._submit(name))

    def _submit(self, name: str) -> asyncio.Future[bytes]:
        if name not in self._parts:
            future = asyncio.get_running_loop().create_future()
            self._parts[name] = future
            self._queue.put_nowait((name, future))
        return self._parts[name]

    # --8<-- [end:fifo]

    async def _work(self) -> None:
        while True:
            name, future = await self._queue.get()
            try:
                future.set_result(await self._fetch(name))
            except Exception as exc:  # the waiter gets it, the worker goes on
                future.set_exception(exc)
                self._parts.pop(name, None)

    async def aclose(self) -> None:
        """Stop the fetchers; parts still queued are never fetched."""
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)


# --8<-- [start:priority]
class PriorityLoader:
    """Critical loads first; prefetches only on idle slots, and preemptible.

    Args:
        fetch: Coroutine function that downloads one part. It must tolerate
            cancellation: a preempted prefetch is cancelled mid-fetch.
        slots: How many fetches may run at once, critical and prefetch.
    """

    def __init__(self, fetch: Fetch, slots: int = 4) -> None:
        self._fetch = fetch
        self._free = slots
        self._waiters: deque[asyncio.Future[None]] = deque()  # critical loads
        self._queued: deque[str] = deque()  # prefetches not started yet
        self._running: dict[str, asyncio.Task[bytes]] = {}  # prefetches
        self._parts: dict[str, asyncio.Future[bytes]] = {}  # one per part
        self._wanted: set[str] = set()  # parts a caller waits for
        self._claims: set[asyncio.Future[bytes]] = set()  # loads without a slot
        self.preempted = 0

    def prefetch(self, name: str) -> None:
        """Fetch ``name`` when a slot is idle; never delays a critical load."""
        if name not in self._parts and name not in self._queued:
            self._queued.append(name)
            self._fill()

    # --8<-- [end:priority]

    # --8<-- [start:load]
    async def load(self, name: str) -> bytes:
        """Fetch ``name`` now, ahead of every prefetch, and return it."""
        part = self._parts.get(name)
        if part is None:  # not started: start it in the critical lane
            with contextlib.suppress(ValueError):
                self._queued.remove(name)
            part = self._parts[name] = asyncio.ensure_future(self._critical(name))
            self._claims.add(part)  # from now on, no prefetch takes a free slot
            part.add_done_callback(lambda done: self._settled(name, done))
        self._wanted.add(name)  # a running prefetch of it is not preempted
        try:
            return await asyncio.shield(part)
        finally:
            self._wanted.discard(name)

    async def _critical(self, name: str) -> bytes:
        await self._acquire()
        self._claims.discard(asyncio.current_task())
        self._fill()  # slots this load did not need go back to prefetching
        try:
            return await self._fetch(name)
        finally:
            self._release()

    # --8<-- [end:load]

    # --8<-- [start:acquire]
    async def _acquire(self) -> None:
        if self._free and not self._waiters:
            self._free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._preempt()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # the slot was handed over: pass it on
            else:
                self._waiters.remove(waiter)
            raise

    def _preempt(self) -> None:
        """Cancel the newest prefetch nobody waits for; queue it again."""
        for name, task in reversed(self._running.items()):
            # A task that finished a moment ago is listed until its callback
            # runs; it holds no slot, and its result is worth keeping.
            if name not in self._wanted and not task.done():
                del self._running[name]
                task.cancel()
                del self._parts[name]
                self._queued.appendleft(name)
                self.preempted += 1
                return

    # --8<-- [end:acquire]

    # --8<-- [start:release]
    def _release(self) -> None:
        while self._waiters:  # a waiting critical load takes the slot over
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1
        self._fill()

    def _fill(self) -> None:
        while self._free and not self._claims and self._queued:
            name = self._queued.popleft()
            self._free -= 1
            task = asyncio.create_task(self._prefetch(name))
            self._parts[name] = self._running[name] = task
            task.add_done_callback(functools.partial(self._settled, name))

    # --8<-- [end:release]

    async def _prefetch(self, name: str) -> bytes:
        try:
            return await self._fetch(name)
        finally:
            self._release()

    def _settled(self, name: str, done: asyncio.Future[bytes]) -> None:
        if done in self._claims:  # cancelled before it had a slot
            self._claims.discard(done)
            self._fill()
        if self._running.get(name) is done:
            del self._running[name]
        if self._parts.get(name) is done and (
            done.cancelled() or done.exception() is not None
        ):
            del self._parts[name]  # a failed part is fetched again next time

    async def aclose(self) -> None:
        """Drop queued prefetches and cancel every fetch still running."""
        self._queued.clear()
        pending = [part for part in self._parts.values() if not part.done()]
        for part in pending:
            part.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


# --8<-- [start:demo]
async def critical_behind_prefetches(
    make: Callable[[Fetch, int], FifoLoader | PriorityLoader],
    prefetches: int = 20,
    slots: int = 4,
    unit: float = 0.25,
) -> dict[str, int]:
    """Queue ``prefetches`` speculative parts, then load one critical part.

    Returns counts: how many prefetches had started and finished when the
    critical fetch started, how many were preempted, and how many times each
    part was fetched in the end (``fetches`` is the total).
    """
    events: list[tuple[str, str]] = []

    async def fetch(name: str) -> bytes:
        events.append(("start", name))
        await asyncio.sleep(unit)  # one unit of transfer time
        events.append(("done", name))
        return name.encode()

    loader = make(fetch, slots)
    names = [f"prefetch-{i:02}" for i in range(prefetches)]
    try:
        for name in names:
            loader.prefetch(name)
        await asyncio.sleep(0)  # the fetchers pick up their first parts
        await asyncio.wait_for(loader.load("critical"), timeout=30)
        at = events.index(("start", "critical"))
        await asyncio.wait_for(asyncio.gather(*map(loader.load, names)), 30)
    finally:
        await loader.aclose()
    return {
        "started": sum(e[0] == "start" for e in events[:at]),
        "finished": sum(e[0] == "done" for e in events[:at]),
        "preempted": getattr(loader, "preempted", 0),
        "fetches": sum(e[0] == "done" for e in events),
    }


# --8<-- [end:demo]


# --8<-- [start:run]
def demo() -> list[str]:
    """Run the scenario with both loaders; one line each."""
    lines = []
    for label, make in (("fifo", FifoLoader), ("priority", PriorityLoader)):
        c = asyncio.run(critical_behind_prefetches(make))
        lines.append(
            f"{label:<8} critical fetch started after {c['started']} prefetches"
            f" started, {c['finished']} finished; {c['preempted']} preempted;"
            f" {c['fetches']} fetches in all"
        )
    return lines


if __name__ == "__main__":
    sys.exit(run_cases({"demo": demo}))
# --8<-- [end:run]
