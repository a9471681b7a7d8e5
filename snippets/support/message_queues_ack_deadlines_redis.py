"""Redis Streams scenarios of the ack-deadlines demos and tests.

A consumer-group worker process is killed between XREADGROUP and XACK; each
scenario shows what happens to its entry next (a second consumer reading
``>``, the same consumer restarting, a reclaimer with XAUTOCLAIM, dead
lettering) against a real Redis server and returns what it observed.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass

import redis as redis_py

from snippets.message_queues.ack_deadlines import (
    Fields,
    consume,
    ensure_group,
    run_reclaimer,
)
from snippets.support.message_queues_ack_deadlines_workers import (
    GROUP,
    kill_hard,
    spawn_worker,
    wait_for_line,
)

__all__ = [
    "RedisBreak",
    "RedisDeadLetter",
    "RedisReclaim",
    "RedisRestart",
    "crash_redis_worker",
    "delivery",
    "redis_break",
    "redis_client",
    "redis_dead_letter",
    "redis_reclaim",
    "redis_restart",
]


def redis_client(url: str) -> redis_py.Redis:
    """A client as the Redis functions need it: decoded, with a socket timeout."""
    return redis_py.Redis.from_url(url, decode_responses=True, socket_timeout=5)


def crash_redis_worker(client: redis_py.Redis, stream: str, url: str) -> str:
    """Add one entry; worker-1 reads it and is killed before XACK."""
    ensure_group(client, stream, GROUP)
    entry_id = str(client.xadd(stream, {"job": "resize-42"}))
    worker = spawn_worker("redis", url, stream, "worker-1")
    try:
        line = wait_for_line(worker)
    finally:
        kill_hard(worker)
    if line != f"started {entry_id}" or worker.returncode != -signal.SIGKILL:
        raise RuntimeError(f"worker said {line!r}, exit {worker.returncode}")
    return entry_id


def delivery(client: redis_py.Redis, stream: str, entry_id: str) -> tuple[str, int]:
    """The entry's owner and delivery counter (XPENDING, extended form)."""
    [row] = client.xpending_range(stream, GROUP, entry_id, entry_id, 1)
    return str(row["consumer"]), int(row["times_delivered"])


@dataclass
class RedisBreak:
    """A second consumer reading `>` after the first one died."""

    entry_id: str
    seen: list[str]
    handled: int
    pending: int
    pending_id: str
    owner: str
    delivered: int
    idle_ms: int


def redis_break(client: redis_py.Redis, stream: str, url: str) -> RedisBreak:
    """worker-1 dies before XACK; worker-2 reads new entries for one second."""
    entry_id = crash_redis_worker(client, stream, url)
    seen: list[str] = []

    def handler(entry: str, fields: Fields) -> None:
        seen.append(entry)

    stop = threading.Event()
    timer = threading.Timer(1.0, stop.set)  # worker-2 reads for one second
    timer.start()
    handled = consume(client, stream, GROUP, "worker-2", handler, stop, block_ms=200)
    timer.join()
    summary = client.xpending(stream, GROUP)
    [row] = client.xpending_range(stream, GROUP, "-", "+", 10)
    return RedisBreak(
        entry_id,
        seen,
        handled,
        int(summary["pending"]),
        str(row["message_id"]),
        str(row["consumer"]),
        int(row["times_delivered"]),
        int(row["time_since_delivered"]),
    )


@dataclass
class RedisRestart:
    """worker-1 restarted under its own name."""

    entry_id: str
    seen: list[tuple[str, str, int]]
    handled: int
    pending: int


def redis_restart(client: redis_py.Redis, stream: str, url: str) -> RedisRestart:
    """worker-1 dies before XACK and comes back under the same name."""
    entry_id = crash_redis_worker(client, stream, url)
    seen: list[tuple[str, str, int]] = []
    stop = threading.Event()
    guard = threading.Timer(5.0, stop.set)
    guard.start()

    def handler(entry: str, fields: Fields) -> None:
        seen.append((entry, *delivery(client, stream, entry)))
        stop.set()

    handled = consume(client, stream, GROUP, "worker-1", handler, stop)
    guard.cancel()
    pending = int(client.xpending(stream, GROUP)["pending"])
    return RedisRestart(entry_id, seen, handled, pending)


@dataclass
class RedisReclaim:
    """A reclaimer took over a dead consumer's entry."""

    entry_id: str
    seen: list[tuple[str, str, int]]
    pending: int
    dead_lettered: int


def redis_reclaim(
    client: redis_py.Redis, stream: str, dead: str, url: str
) -> RedisReclaim:
    """worker-1 dies before XACK and never comes back; a reclaimer runs."""
    entry_id = crash_redis_worker(client, stream, url)
    seen: list[tuple[str, str, int]] = []
    done, stop = threading.Event(), threading.Event()

    def handler(entry: str, fields: Fields) -> None:
        seen.append((entry, *delivery(client, stream, entry)))
        done.set()

    reclaimer = threading.Thread(
        target=run_reclaimer,
        args=(client, stream, GROUP, "reclaimer", handler, stop),
        kwargs={
            "min_idle_ms": 500,
            "max_deliveries": 3,
            "dead_letter": dead,
            "interval_s": 0.1,
        },
    )
    reclaimer.start()
    try:
        if not done.wait(timeout=5):
            raise RuntimeError("the reclaimer never claimed the entry")
    finally:
        stop.set()
        reclaimer.join(timeout=5)
    if reclaimer.is_alive():
        raise RuntimeError("the reclaimer did not stop")
    pending = int(client.xpending(stream, GROUP)["pending"])
    return RedisReclaim(entry_id, seen, pending, client.xlen(dead))


@dataclass
class RedisDeadLetter:
    """An entry whose handler always fails, after the dead-letter limit."""

    entry_id: str
    attempts: list[str]
    record: dict[str, str]
    dead_lettered: int
    pending: int


def redis_dead_letter(
    client: redis_py.Redis, stream: str, dead: str
) -> RedisDeadLetter:
    """A consumer and a reclaimer (max deliveries 3) on a handler that fails."""
    ensure_group(client, stream, GROUP)
    entry_id = str(client.xadd(stream, {"job": "resize-42"}))
    attempts: list[str] = []

    def always_fails(entry: str, fields: Fields) -> None:
        attempts.append(entry)
        raise ValueError("cannot resize a zero-byte image")

    stop = threading.Event()
    threads = [
        threading.Thread(
            target=consume,
            args=(client, stream, GROUP, "worker-1", always_fails, stop),
            kwargs={"block_ms": 100},
        ),
        threading.Thread(
            target=run_reclaimer,
            args=(client, stream, GROUP, "reclaimer", always_fails, stop),
            kwargs={
                "min_idle_ms": 100,
                "max_deliveries": 3,
                "dead_letter": dead,
                "interval_s": 0.05,
            },
        ),
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    try:
        while client.xlen(dead) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
    if any(thread.is_alive() for thread in threads):
        raise RuntimeError("a worker thread did not stop")
    records = client.xrange(dead) or []
    record = {
        str(k): str(v) for _, fields in records for k, v in (fields or {}).items()
    }
    pending = int(client.xpending(stream, GROUP)["pending"])
    return RedisDeadLetter(entry_id, attempts, record, len(records), pending)
