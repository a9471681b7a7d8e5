"""Cache stampede protection: cache-aside with single-flight, a Redis lock,
stale serving, early refresh and version-checked writes.

When a hot key expires, every request that misses reloads it: the backing
store takes N identical reads at once. `StampedeGuard` keeps that to one:

* in-process single-flight: threads that miss the same key share one load;
* a Redis lock (``SET key token NX PX ttl``) so that one process loads while
  the others poll the cache for its result;
* a soft expiry before the hard TTL: a value past its soft expiry is served
  (stale) while one caller refreshes it, and a draw from an exponential
  distribution starts that refresh a little early, so a hot value is usually
  renewed before anybody misses it;
* version-checked writes, so a slow reload cannot overwrite a newer value.

The Redis client must be created with ``decode_responses=True``.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

import psycopg
import redis

log = logging.getLogger(__name__)

T = TypeVar("T")

Loader = Callable[[], tuple[str, int]]
"""Reads the backing store; returns the serialized value and its version."""


# --8<-- [start:naive]
def cache_aside_get(client: redis.Redis, key: str, load: Loader, ttl: float) -> str:
    """Plain cache-aside, kept for the tests: every caller that misses loads."""
    cached = cast("str | None", client.get(key))
    if cached is not None:
        return cached
    value, _version = load()  # N callers that missed run N loads
    client.set(key, value, px=int(ttl * 1000))  # the last one to finish wins
    return value


# --8<-- [end:naive]


# --8<-- [start:store]
def product_loader(conninfo: str, product_id: int) -> Loader:
    """A `Loader` that reads one product row from PostgreSQL.

    Each call opens its own connection to keep the example short; share a
    bounded pool in a real service.
    """

    def load() -> tuple[str, int]:
        with psycopg.connect(conninfo, connect_timeout=5) as conn:
            row = conn.execute(
                "SELECT name, price_cents, version FROM products WHERE id = %s",
                (product_id,),
            ).fetchone()
        if row is None:
            raise LookupError(f"no product {product_id}")
        name, price_cents, version = row
        return json.dumps({"name": name, "price_cents": price_cents}), version

    return load


def update_price(conn: psycopg.Connection[Any], product_id: int, cents: int) -> int:
    """Change a price and return the row's new version (one more than before)."""
    row = conn.execute(
        "UPDATE products SET price_cents = %s, version = version + 1"
        " WHERE id = %s RETURNING version",
        (cents, product_id),
    ).fetchone()
    if row is None:
        raise LookupError(f"no product {product_id}")
    return cast(int, row[0])


# --8<-- [end:store]


@dataclass
class _Call(Generic[T]):
    future: Future[T] = field(default_factory=Future)
    callers: int = 0


def _copy_of(error: BaseException) -> BaseException:
    """A new exception of the same type and arguments, without a traceback."""
    try:
        return copy.copy(error)
    except Exception:  # a constructor that does not accept its own args
        return RuntimeError(f"the shared call failed: {error!r}")


# --8<-- [start:single-flight]
class SingleFlight(Generic[T]):
    """One call per key at a time; callers that arrive meanwhile share it.

    The first caller for a key (the leader) runs the function. Callers that
    arrive while it runs get the same value, or each a copy of the leader's
    exception whose ``__cause__`` is the leader's exception. The key is
    free again as soon as the call ends: this removes duplicate work, it does
    not cache.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, _Call[T]] = {}

    def do(
        self, key: str, fn: Callable[[], T], timeout: float | None = None
    ) -> tuple[T, bool]:
        """Run or join the call for `key`; return ``(result, shared)``.

        Raises:
            TimeoutError: A follower waited longer than `timeout` seconds.
        """
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if call is None:
                call = self._calls[key] = _Call()
            call.callers += 1
        if not leader:
            error = call.future.exception(timeout)  # TimeoutError if it runs on
            if error is None:
                return call.future.result(), True
            # A fresh exception per follower, chained to the leader's: raising
            # the one shared object from many threads would interleave their
            # tracebacks on it.
            raise _copy_of(error) from error
        try:
            call.future.set_result(fn())
        except BaseException as error:
            call.future.set_exception(error)
            raise
        finally:
            with self._lock:
                del self._calls[key]
        return call.future.result(), False

    # --8<-- [end:single-flight]

    def callers(self, key: str) -> int:
        """How many callers share the call in flight for `key` (0 if none)."""
        with self._lock:
            call = self._calls.get(key)
            return 0 if call is None else call.callers


# --8<-- [start:lock]
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLock:
    """A lock with a lease, for one Redis instance (not Redlock).

    ``acquire`` is ``SET key token NX PX ttl``: it succeeds only if nobody
    holds the key, and the lock disappears by itself after `ttl` seconds if
    its holder dies. ``release`` deletes the key only if it still holds the
    caller's token, so a holder whose lease ran out cannot delete the lock of
    the process that took over.
    """

    def __init__(self, client: redis.Redis, ttl: float) -> None:
        self._client = client
        self.ttl = ttl
        self._release = client.register_script(RELEASE)

    def acquire(self, key: str) -> str | None:
        """Take the lock if it is free; return its token, or None. Never waits."""
        token = secrets.token_hex(16)
        taken = self._client.set(key, token, nx=True, px=int(self.ttl * 1000))
        return token if taken else None

    def release(self, key: str, token: str) -> bool:
        """Delete the lock if it is still ours; False if the lease had expired."""
        return bool(self._release(keys=[key], args=[token]))


# --8<-- [end:lock]


# --8<-- [start:versioned]
STORE = """
local current = tonumber(redis.call('HGET', KEYS[1], 'version'))
if current and current > tonumber(ARGV[1]) then
    return 0
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'value', ARGV[2],
           'delta', ARGV[3], 'stale', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""

INVALIDATE = """
local current = tonumber(redis.call('HGET', KEYS[1], 'version'))
if current and current >= tonumber(ARGV[1]) then
    return 0
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'version', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
# --8<-- [end:versioned]


# --8<-- [start:entry]
@dataclass(frozen=True)
class Entry:
    """A cache entry as read from Redis.

    Attributes:
        value: The cached value; None for a tombstone left by `invalidate`.
        version: The backing store's version of the value.
        delta: Seconds the load that produced the value took.
        fresh_for: Seconds until the soft expiry; negative once it passed.
    """

    value: str | None
    version: int
    delta: float
    fresh_for: float


def read_entry(client: redis.Redis, key: str) -> Entry | None:
    """Read an entry and its remaining lifetime in one round trip."""
    with client.pipeline(transaction=True) as pipe:
        pipe.hgetall(key)
        pipe.pttl(key)
        fields, pttl = cast("tuple[dict[str, str], int]", tuple(pipe.execute()))
    if not fields or pttl < 0:
        return None
    stale = float(fields.get("stale", 0))
    return Entry(
        value=fields.get("value"),
        version=int(fields["version"]),
        delta=float(fields.get("delta", 0)),
        fresh_for=pttl / 1000 - stale,
    )


# --8<-- [end:entry]


# --8<-- [start:early]
def refresh_due(
    fresh_for: float, delta: float, beta: float, rng: random.Random
) -> bool:
    """Whether this read should refresh the value now.

    Past the soft expiry, always. Before it, with a probability that grows as
    the expiry nears: the read draws a head start from an exponential
    distribution with mean ``delta * beta`` (the last load's duration times
    an eagerness factor) and refreshes if the head start reaches the expiry.
    A value that takes longer to load starts refreshing earlier.
    """
    if fresh_for <= 0:
        return True
    if beta <= 0 or delta <= 0:
        return False
    head_start = -delta * beta * math.log(1.0 - rng.random())  # 1 - U is in (0, 1]
    return head_start >= fresh_for


# --8<-- [end:early]


# --8<-- [start:policy]
@dataclass(frozen=True)
class Policy:
    """How long values live and how callers coordinate.

    Attributes:
        ttl: Seconds a value is fresh (its soft TTL), before jitter.
        stale_for: Seconds a value may still be served after its soft TTL
            while one caller refreshes it. The Redis key lives
            ``ttl + stale_for`` seconds.
        jitter: Each stored TTL is multiplied by a random factor in
            ``1 ± jitter``, so keys written together do not expire together.
        beta: Eagerness of the early refresh; 0 refreshes at the soft expiry.
        lock_ttl: Lease of the cross-process lock, in seconds; longer than a
            load normally takes. None: no lock, single-flight per process only.
        wait: Seconds a caller without any value waits for another's load.
    """

    ttl: float = 60.0
    stale_for: float = 30.0
    jitter: float = 0.1
    beta: float = 1.0
    lock_ttl: float | None = 5.0
    wait: float = 10.0


# --8<-- [end:policy]


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


# --8<-- [start:simulate]
def simulate_expiry(
    processes: int,
    beta: float,
    rng: random.Random,
    *,
    ttl: float = 10.0,
    delta: float = 0.5,
    tick: float = 0.05,
) -> tuple[int, float]:
    """Count the reloads that uncoordinated processes start around one expiry.

    Each process reads the key once per `tick` and decides with
    `refresh_due`, with no lock. A reload takes `delta` seconds, and until
    the first one finishes every read still sees the old entry. Returns the
    reloads started in that window and how long before the expiry the first
    one started.
    """
    first: float | None = None
    started = 0
    step = 0
    while first is None or step * tick < first + delta:
        now = step * tick
        for _ in range(processes):
            if refresh_due(ttl - now, delta, beta, rng):
                started += 1
                first = now if first is None else first
        step += 1
    return started, ttl - first


# --8<-- [end:simulate]


# --8<-- [start:demo]
def demo(expiries: int = 200, seed: int = 7) -> list[str]:
    """The lines the page shows: reloads per expiry, without and with early refresh."""
    processes = 16
    lines = [
        f"{processes} processes read one key every 50 ms, a reload takes 0.5 s,"
        f" {expiries} expiries:"
    ]
    for label, beta in (("refresh at expiry", 0.0), ("early refresh, beta 1", 1.0)):
        rng = random.Random(seed)
        runs = [simulate_expiry(processes, beta, rng) for _ in range(expiries)]
        reloads = [started for started, _ in runs]
        lead = sum(lead for _, lead in runs) / expiries
        lines.append(
            f"  {label:<22} reloads mean {sum(reloads) / expiries:5.1f},"
            f" max {max(reloads):3}; the first {lead:.1f} s before expiry"
        )
    return lines


if __name__ == "__main__":
    print("\n".join(demo()))
# --8<-- [end:demo]
