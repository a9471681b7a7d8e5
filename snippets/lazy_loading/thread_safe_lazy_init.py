"""Thread-safe lazy initialization: run an initializer once, however many ask.

Three tools, one idea (check, lock, check again, publish):

* `Once` holds one lazily computed value, such as a module-level client.
* `locked_cached_property` is `functools.cached_property` with a lock per
  instance, so the getter runs once per instance on every Python version.
* `AsyncOnce` is the asyncio version: one initialization in flight, shared by
  every task that asks, and not cancelled when one of them gives up.

After the value exists, reading it takes no lock.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar, cast

from snippets.support.cases import run_cases

__all__ = ["AsyncOnce", "Once", "locked_cached_property"]

T = TypeVar("T")


class _Unset:
    """Marker for "not initialized yet"; `None` may be a legitimate value."""


_UNSET: Any = _Unset()


# --8<-- [start:naive]
class NaiveLazy(Generic[T]):
    """The broken version, kept for the test: check-then-act without a lock."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._value: T = _UNSET

    def get(self) -> T:
        if self._value is _UNSET:  # every thread that arrives now sees "unset"
            self._value = self._factory()  # ... and each one runs the factory
        return self._value


# --8<-- [end:naive]


# --8<-- [start:once]
class Once(Generic[T]):
    """A value computed on first use, exactly once, from any number of threads.

    If the factory raises, nothing is stored: the exception reaches the caller
    and the next call (including one already waiting for the lock) tries again.

    Args:
        factory: Computes the value. Called at most once per successful
            initialization, never concurrently with itself.
    """

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._value: T = _UNSET

    def get(self) -> T:
        """Return the value, computing it first if no call has done so yet."""
        value = self._value  # fast path: one read, no lock
        if value is not _UNSET:
            return value
        with self._lock:
            if self._value is _UNSET:  # check again: another thread may have won
                self._value = self._factory()  # publish only a finished value
            return self._value

    @property
    def initialized(self) -> bool:
        """Whether the value has been computed."""
        return self._value is not _UNSET


# --8<-- [end:once]


# --8<-- [start:property]
class locked_cached_property(Generic[T]):  # named like the stdlib one
    """`functools.cached_property` whose getter runs once per instance.

    The lock is per instance, so two instances initialize in parallel; the
    cached value lives in the instance `__dict__`, so later reads do not call
    this descriptor at all. The lock is removed once the value is published,
    so the instance still pickles and deep-copies.
    """

    def __init__(self, func: Callable[[Any], T]) -> None:
        self.func = func
        self.attrname = ""
        self.__doc__ = func.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.attrname = name

    def __get__(self, instance: object, owner: type | None = None) -> T:
        if instance is None:
            return cast(T, self)
        try:
            cache = instance.__dict__
        except AttributeError:  # a __slots__ class without "__dict__"
            raise TypeError(
                f"No '__dict__' attribute on {type(instance).__name__!r} "
                f"instance to cache {self.attrname!r} property."
            ) from None
        if self.attrname in cache:  # set by another thread a moment ago
            return cast(T, cache[self.attrname])
        # dict.setdefault is atomic: every racer gets the same lock object.
        lock_name = f"_lock_{self.attrname}"
        with cache.setdefault(lock_name, threading.Lock()):
            if self.attrname not in cache:
                cache[self.attrname] = self.func(instance)
            # Published: a late racer finds the value, so the lock can go.
            # Each thread that set a lock removes one (a failure keeps it).
            cache.pop(lock_name, None)
            return cast(T, cache[self.attrname])


# --8<-- [end:property]


# --8<-- [start:async]
class AsyncOnce(Generic[T]):
    """The asyncio version: one initialization in flight, awaited by all.

    A caller that is cancelled stops waiting but does not cancel the shared
    initialization (`asyncio.shield`). If the initialization fails, every
    waiter gets the exception and the next call starts a new attempt.
    Use one instance from one event loop.
    """

    def __init__(self, factory: Callable[[], Awaitable[T]]) -> None:
        self._factory = factory
        self._task: asyncio.Future[T] | None = None

    async def get(self) -> T:
        """Return the value, starting the initialization if none is running."""
        task = self._task
        if task is None or (
            task.done() and (task.cancelled() or task.exception() is not None)
        ):
            task = self._task = asyncio.ensure_future(self._factory())
        return await asyncio.shield(task)  # a done task returns at once


# --8<-- [end:async]


# --8<-- [start:demo]
def count_initializations(make_lazy: Callable[[Callable[[], object]], Any]) -> str:
    """Let 8 threads ask one lazy value at once; count the factory's runs."""
    threads = 8
    calls = 0
    count_lock = threading.Lock()
    # Every racer waits here, so they all pass the "unset" check together.
    # With a lock only one thread reaches the factory: it gives up waiting
    # after a short timeout and carries on alone.
    all_inside = threading.Barrier(threads)

    def factory() -> object:
        nonlocal calls
        with count_lock:
            calls += 1
        try:
            all_inside.wait(timeout=0.5)
        except threading.BrokenBarrierError:
            pass
        return object()

    lazy = make_lazy(factory)
    start = threading.Barrier(threads)

    def worker() -> None:
        start.wait()
        lazy.get()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=10)
    times = "time" if calls == 1 else "times"
    return f"{type(lazy).__name__:<9} {threads} threads, factory ran {calls} {times}"


def show_demo() -> list[str]:
    """Eight threads ask one lazy value at once, without and with a lock."""
    return [count_initializations(NaiveLazy), count_initializations(Once)]


if __name__ == "__main__":
    sys.exit(run_cases({"demo": show_demo}))
# --8<-- [end:demo]
