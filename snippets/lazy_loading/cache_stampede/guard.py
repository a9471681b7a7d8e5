"""`StampedeGuard`: cache-aside on Redis that loads each key once."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from typing import cast

import redis

from snippets.lazy_loading.cache_stampede.entry import (
    INVALIDATE,
    STORE,
    Entry,
    Policy,
    read_entry,
    refresh_due,
)
from snippets.lazy_loading.cache_stampede.lock import RedisLock
from snippets.lazy_loading.cache_stampede.single_flight import SingleFlight
from snippets.lazy_loading.cache_stampede.store import Loader

__all__ = ["StampedeGuard"]

log = logging.getLogger(__name__)


class StampedeGuard:
    """Cache-aside on Redis that loads each key once, not once per caller.

    Use one guard per process and share it between threads. ``stats`` counts
    what callers did: ``hit``, ``loaded`` (this caller loaded a missing key),
    ``shared`` (joined another thread's load), ``waited`` (got a value that
    another process loaded), ``lock_busy`` (found another process loading),
    ``stale`` (served a value past its soft TTL), ``refreshed``,
    ``refresh_failed`` and ``stale_write_refused``.
    """

    def __init__(
        self,
        client: redis.Redis,
        policy: Policy | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy or Policy()
        self.stats: Counter[str] = Counter()
        self._client = client
        self._rng = rng or random.Random()
        self._flights: SingleFlight[str] = SingleFlight()
        self._refreshing: set[str] = set()
        self._mutex = threading.Lock()
        lock_ttl = self.policy.lock_ttl
        self._lock = RedisLock(client, lock_ttl) if lock_ttl else None
        self._store = client.register_script(STORE)
        self._invalidate = client.register_script(INVALIDATE)

    # --8<-- [start:guard]
    def get(self, key: str, load: Loader) -> str:
        """Return the cached value for `key`, loading it at most once.

        Raises:
            TimeoutError: No value appeared within ``policy.wait`` seconds.
        """
        entry = read_entry(self._client, key)
        if entry is not None and entry.value is not None:
            if not refresh_due(
                entry.fresh_for, entry.delta, self.policy.beta, self._rng
            ):
                self._count("hit")
                return entry.value
            return self._refresh(key, load, entry)
        value, shared = self._flights.do(
            key, lambda: self._fill(key, load), self.policy.wait
        )
        if shared:
            self._count("shared")
        return value

    # --8<-- [end:guard]

    # --8<-- [start:fill]
    def _fill(self, key: str, load: Loader) -> str:
        """No value at all: load it under the lock, or wait for whoever does."""
        deadline = time.monotonic() + self.policy.wait
        delay = 0.01
        while True:
            token = self._acquire(key)
            if token is not None:
                try:
                    # Check again under the lock: the previous holder may
                    # have stored the value since this caller looked.
                    entry = read_entry(self._client, key)
                    if entry is None or entry.value is None:
                        value = self._load_and_store(key, load)
                        self._count("loaded")
                        return value
                finally:
                    self._release(key, token)
                self._count("waited")
                return entry.value
            self._count("lock_busy")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no value for {key!r} in {self.policy.wait} s")
            time.sleep(min(delay * self._rng.uniform(0.5, 1.0), remaining))
            delay = min(delay * 2, 0.2)  # capped exponential backoff, jittered
            entry = read_entry(self._client, key)
            if entry is not None and entry.value is not None:
                self._count("waited")
                return entry.value

    # --8<-- [end:fill]

    # --8<-- [start:refresh]
    def _refresh(self, key: str, load: Loader, seen: Entry) -> str:
        """A value exists but is due: one caller refreshes, the rest serve it."""
        current = cast(str, seen.value)
        with self._mutex:
            busy = key in self._refreshing  # another thread here is on it?
            if not busy:
                self._refreshing.add(key)
        if busy:
            self._count("stale")
            return current
        try:
            token = self._acquire(key)
            if token is None:  # another process is on it
                self._count("stale")
                return current
            try:
                entry = read_entry(self._client, key)  # renewed meanwhile?
                if (
                    entry
                    and entry.value is not None
                    and entry.fresh_for > seen.fresh_for
                ):
                    self._count("hit")
                    return entry.value
                value = self._load_and_store(key, load)
            finally:
                self._release(key, token)
        except Exception:
            log.warning(
                "refreshing %r failed; serving the old value", key, exc_info=True
            )
            self._count("refresh_failed")
            return current
        finally:
            with self._mutex:
                self._refreshing.discard(key)
        self._count("refreshed")
        return value

    # --8<-- [end:refresh]

    # --8<-- [start:write]
    def _load_and_store(self, key: str, load: Loader) -> str:
        started = time.monotonic()
        value, version = load()
        delta = time.monotonic() - started
        policy = self.policy
        ttl = policy.ttl * self._rng.uniform(1 - policy.jitter, 1 + policy.jitter)
        hard_ms = max(1, int((ttl + policy.stale_for) * 1000))
        args = (version, value, repr(delta), repr(policy.stale_for), hard_ms)
        if not self._store(keys=[key], args=args):
            # A newer version is already cached (or a tombstone says one exists).
            self._count("stale_write_refused")
        return value

    def invalidate(self, key: str, version: int) -> None:
        """Call after committing `version` to the store: drop older values.

        Leaves a tombstone that refuses any write older than `version` for the
        key's full lifetime, so a load that read the old row before the
        commit cannot put it back.
        """
        policy = self.policy
        hard_ms = int((policy.ttl * (1 + policy.jitter) + policy.stale_for) * 1000)
        self._invalidate(keys=[key], args=[version, hard_ms])

    # --8<-- [end:write]

    def _acquire(self, key: str) -> str | None:
        if self._lock is None:
            return ""  # no cross-process lock: this process may always load
        return self._lock.acquire(f"{key}:lock")

    def _release(self, key: str, token: str) -> None:
        if self._lock is not None and not self._lock.release(f"{key}:lock", token):
            log.warning("the lock on %r expired before the load finished", key)

    def _count(self, what: str) -> None:
        with self._mutex:
            self.stats[what] += 1
