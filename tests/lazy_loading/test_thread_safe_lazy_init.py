"""Tests for snippets/lazy_loading/thread_safe_lazy_init.py.

The race is made deterministic with barriers: every thread is held inside the
initializer until all of them have arrived, so a version without a lock runs it
once per thread, every time.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import pickle
import platform
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

from snippets.lazy_loading.thread_safe_lazy_init import (
    AsyncOnce,
    NaiveLazy,
    Once,
    locked_cached_property,
)
from tools.errors import ErrorRecorder

THREADS = 8


def run_together(threads: int, target: Callable[[], object]) -> list[object]:
    """Start `threads` threads at the same moment; return what each got."""
    start = threading.Barrier(threads)
    results: list[object] = []

    def worker() -> None:
        start.wait(timeout=5)
        results.append(target())

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=10)
        assert not thread.is_alive(), "a thread is stuck: deadlock?"
    return results


class Counter:
    """A factory that counts its runs and holds every racer inside itself."""

    def __init__(self, racers: int, wait: float = 0.5) -> None:
        self.calls = 0
        self._lock = threading.Lock()
        self._inside = threading.Barrier(racers)
        self._wait = wait

    def __call__(self) -> object:
        with self._lock:
            self.calls += 1
        try:
            self._inside.wait(timeout=self._wait)
        except threading.BrokenBarrierError:
            pass  # fewer racers got in: the lock kept them out
        return object()


# -- see it break ----------------------------------------------------------- #


def test_without_a_lock_every_thread_runs_the_initializer() -> None:
    factory = Counter(THREADS, wait=5)
    lazy = NaiveLazy(factory)
    run_together(THREADS, lazy.get)
    assert factory.calls == THREADS


def test_lru_cache_gives_no_call_once_guarantee() -> None:
    factory = Counter(THREADS, wait=5)

    @functools.lru_cache(maxsize=1)
    def settings() -> object:
        return factory()

    run_together(THREADS, settings)
    assert factory.calls == THREADS


CACHED_PROPERTY_HAS_LOCK = sys.version_info < (3, 12)


def test_cached_property_is_call_once_only_while_it_had_a_lock() -> None:
    # 3.12 removed cached_property's lock: the getter then runs once per racer.
    factory = Counter(THREADS, wait=0.5 if CACHED_PROPERTY_HAS_LOCK else 5)

    class Service:
        @functools.cached_property
        def client(self) -> object:
            return factory()

    service = Service()
    run_together(THREADS, lambda: service.client)
    assert factory.calls == (1 if CACHED_PROPERTY_HAS_LOCK else THREADS)


def test_cached_property_lock_was_per_class_not_per_instance() -> None:
    # Before 3.12 the lock belonged to the property, so two *instances* could
    # not initialize at the same time: two getters waiting for each other
    # never met. From 3.12 on they meet (and nothing stops a race either).
    meet = threading.Barrier(2)
    outcomes: list[str] = []

    class Service:
        @functools.cached_property
        def client(self) -> object:
            try:
                meet.wait(timeout=0.5)
                outcomes.append("met")
            except threading.BrokenBarrierError:
                outcomes.append("alone")
            return object()

    first, second = Service(), Service()
    instances = iter([first, second])
    run_together(2, lambda: next(instances).client)
    expected = ["alone", "alone"] if CACHED_PROPERTY_HAS_LOCK else ["met", "met"]
    assert outcomes == expected


# -- the pattern holds --------------------------------------------------------- #


def test_once_runs_the_initializer_once_and_hands_out_one_object() -> None:
    factory = Counter(THREADS)
    once = Once(factory)
    results = run_together(THREADS, once.get)
    assert factory.calls == 1
    assert len({id(result) for result in results}) == 1
    assert once.initialized


def test_once_takes_no_lock_once_initialized() -> None:
    once = Once(object)
    value = once.get()
    got: list[object] = []
    with once._lock:  # another thread holding the lock cannot block readers
        reader = threading.Thread(target=lambda: got.append(once.get()))
        reader.start()
        reader.join(timeout=2)
        assert not reader.is_alive(), "the fast path waited for the lock"
    assert got == [value]


def test_once_does_not_store_a_failed_initialization() -> None:
    attempts = 0

    def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionError("database not ready")
        return "connected"

    once = Once(flaky)
    with pytest.raises(ConnectionError):
        once.get()
    assert not once.initialized
    assert once.get() == "connected"
    assert once.get() == "connected"
    assert attempts == 2


def test_locked_cached_property_runs_once_per_instance() -> None:
    factory = Counter(THREADS)

    class Service:
        @locked_cached_property
        def client(self) -> object:
            return factory()

    service = Service()
    results = run_together(THREADS, lambda: service.client)
    assert factory.calls == 1
    assert len({id(result) for result in results}) == 1
    assert "client" in vars(service)  # later reads bypass the descriptor


def test_locked_cached_property_lets_two_instances_initialize_in_parallel() -> None:
    meet = threading.Barrier(2)
    outcomes: list[str] = []

    class Service:
        @locked_cached_property
        def client(self) -> object:
            meet.wait(timeout=5)  # raises unless both getters run together
            outcomes.append("met")
            return object()

    first, second = Service(), Service()
    instances = iter([first, second])
    run_together(2, lambda: next(instances).client)
    assert outcomes == ["met", "met"]


# -- asyncio ------------------------------------------------------------------ #


class Settings:
    """A picklable class with a lazily computed attribute."""

    def __init__(self, name: str) -> None:
        self.name = name

    @locked_cached_property
    def greeting(self) -> str:
        return f"hello {self.name}"


class Slotted:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    @locked_cached_property
    def greeting(self) -> str:
        return f"hello {self.name}"


def test_locked_cached_property_leaves_no_lock_on_the_instance() -> None:
    settings = Settings("ada")
    assert settings.greeting == "hello ada"
    assert pickle.loads(pickle.dumps(settings)).greeting == "hello ada"
    assert copy.deepcopy(settings).greeting == "hello ada"
    assert vars(settings) == {"name": "ada", "greeting": "hello ada"}


def test_a_lock_left_in_the_instance_dict_breaks_pickle(
    error_record: ErrorRecorder,
) -> None:
    """Why the property removes its per-instance lock after the first read."""
    settings = Settings("ada")
    settings.__dict__["_lock_greeting"] = threading.Lock()
    with pytest.raises(TypeError, match="cannot pickle") as caught:
        pickle.dumps(settings)
    error_record(
        caught.value,
        id="pickle-lock",
        component="CPython",
        version=platform.python_version(),
        section="locked-cached-property",
    )


def test_locked_cached_property_leaves_no_lock_after_a_race() -> None:
    settings = Settings("ada")
    results = run_together(THREADS, lambda: settings.greeting)
    assert results == ["hello ada"] * THREADS
    assert vars(settings) == {"name": "ada", "greeting": "hello ada"}


def test_locked_cached_property_on_a_slots_class_says_why_it_cannot_work() -> None:
    with pytest.raises(TypeError, match="No '__dict__' attribute on 'Slotted'"):
        _ = Slotted("ada").greeting


def test_async_once_shares_one_initialization_between_tasks() -> None:
    calls = 0

    async def scenario() -> list[object]:
        gate = asyncio.Event()

        async def connect() -> object:
            nonlocal calls
            calls += 1
            await gate.wait()
            return object()

        once: AsyncOnce[object] = AsyncOnce(connect)
        tasks = [asyncio.create_task(once.get()) for _ in range(THREADS)]
        await asyncio.sleep(0)  # every task is now waiting on the one init
        gate.set()
        return list(await asyncio.wait_for(asyncio.gather(*tasks), timeout=5))

    results = asyncio.run(scenario())
    assert calls == 1
    assert len({id(result) for result in results}) == 1


def test_async_once_survives_a_cancelled_waiter_and_retries_after_failure() -> None:
    attempts = 0

    async def scenario() -> tuple[object, object]:
        gate = asyncio.Event()

        async def connect() -> str:
            nonlocal attempts
            attempts += 1
            await gate.wait()
            if attempts == 1:
                raise ConnectionError("refused")
            return "connected"

        once: AsyncOnce[str] = AsyncOnce(connect)
        impatient = asyncio.create_task(once.get())
        patient = asyncio.create_task(once.get())
        await asyncio.sleep(0)
        impatient.cancel()  # must not cancel the shared initialization
        await asyncio.sleep(0)
        gate.set()
        first: Any = await asyncio.gather(patient, return_exceptions=True)
        second = await asyncio.wait_for(once.get(), timeout=5)
        assert impatient.cancelled()
        return first[0], second

    first, second = asyncio.run(scenario())
    assert isinstance(first, ConnectionError)  # the waiter saw the real failure
    assert second == "connected"
    assert attempts == 2


# -- the output the page shows ------------------------------------------------ #
