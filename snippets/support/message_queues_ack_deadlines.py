"""Harness for the ack-deadlines demos and tests.

Worker processes killed with SIGKILL between reading a message and
acknowledging it, and the scenarios the page shows, run against real Redis and
NATS JetStream servers. Each scenario returns what it observed; the demos print
it and the tests assert on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import nats as nats_py
import redis as redis_py
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig

from snippets.message_queues.ack_deadlines import (
    Fields,
    Job,
    consume,
    create_work_queue,
    ensure_group,
    handle_without_heartbeats,
    run_reclaimer,
    with_heartbeats,
    work_loop,
)

__all__ = [
    "ACK_WAIT",
    "CHILD",
    "DURABLE",
    "GROUP",
    "HEARTBEAT_EVERY",
    "JOB_SECONDS",
    "LONG_ACK_WAIT",
    "Jobs",
    "NatsCrash",
    "NatsHeartbeat",
    "RedisBreak",
    "RedisDeadLetter",
    "RedisReclaim",
    "RedisRestart",
    "Run",
    "crash_redis_worker",
    "delivery",
    "kill_hard",
    "nats_break",
    "nats_connect",
    "nats_crash",
    "nats_defaults",
    "nats_heartbeat",
    "nats_shutdown",
    "queue_state",
    "redis_break",
    "redis_client",
    "redis_dead_letter",
    "redis_reclaim",
    "redis_restart",
    "spawn_worker",
    "wait_for_line",
    "work_queue",
]

ROOT = Path(__file__).resolve().parents[2]
CHILD = "snippets.support.message_queues_ack_deadlines_child"
GROUP = "workers"
DURABLE = "workers"
ACK_WAIT = 1.0  # seconds; short so the runs are quick
JOB_SECONDS = 2.2  # a "long" job: more than twice ACK_WAIT
HEARTBEAT_EVERY = 0.3  # well below ACK_WAIT
LONG_ACK_WAIT = 30.0  # for runs where only a nak may bring a message back


# --------------------------------------------------------------------------- #
# Worker processes that get killed
# --------------------------------------------------------------------------- #


def spawn_worker(*args: str) -> subprocess.Popen[str]:
    """Start the child worker module with `args`."""
    path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    return subprocess.Popen(
        [sys.executable, "-m", CHILD, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(proc: subprocess.Popen[str], timeout: float = 10.0) -> str:
    """The worker's next stdout line; RuntimeError after `timeout` seconds."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        proc.kill()
        _, err = proc.communicate(timeout=5)
        raise RuntimeError(f"worker printed nothing in {timeout} s; stderr:\n{err}")
    return proc.stdout.readline().strip()


def kill_hard(proc: subprocess.Popen[str]) -> None:
    """SIGKILL: no finally blocks, no ack, no goodbye to the broker."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)


# --------------------------------------------------------------------------- #
# Redis Streams
# --------------------------------------------------------------------------- #


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


# --------------------------------------------------------------------------- #
# NATS JetStream
# --------------------------------------------------------------------------- #


async def nats_connect(url: str) -> NatsClient:
    """One connection that fails fast instead of reconnecting."""
    return await nats_py.connect(url, connect_timeout=2, max_reconnect_attempts=0)


def nats_defaults(url: str, stream: str) -> ConsumerConfig:
    """The configuration the server gives a consumer created without limits."""

    async def scenario() -> ConsumerConfig:
        nc = await nats_connect(url)
        try:
            js = nc.jetstream()
            await js.add_stream(name=stream, subjects=[f"{stream}.>"])
            info = await js.add_consumer(
                stream, ConsumerConfig(durable_name="d", ack_policy=AckPolicy.EXPLICIT)
            )
            return info.config
        finally:
            await nc.close()

    return asyncio.run(scenario())


@dataclass
class Run:
    """One run of the job: which worker, on which delivery, from when to when."""

    worker: str
    delivery: int
    started: float
    finished: float | None = None


class Jobs:
    """Makes jobs that record their runs, so duplicate work can be counted."""

    def __init__(self) -> None:
        self.runs: list[Run] = []

    def job(
        self, worker: str, seconds: float, done: asyncio.Event | None = None
    ) -> Job:
        async def run(msg: Msg) -> None:
            record = Run(worker, msg.metadata.num_delivered, time.monotonic())
            self.runs.append(record)
            await asyncio.sleep(seconds)  # the work itself
            record.finished = time.monotonic()
            if done is not None:
                done.set()

        return run


async def work_queue(
    url: str, stream: str, ack_wait: float = ACK_WAIT
) -> tuple[NatsClient, NatsClient]:
    """Two connections (two workers) on a fresh work queue with one job in it."""
    nc_a = await nats_connect(url)
    nc_b = await nats_connect(url)
    js = nc_a.jetstream()
    await create_work_queue(js, stream, DURABLE, ack_wait=ack_wait, max_deliver=5)
    await js.publish(f"{stream}.jobs", b"resize-42")
    return nc_a, nc_b


async def queue_state(nc: NatsClient, stream: str) -> tuple[int, int, int]:
    """(ack pending, redelivered, messages left in the stream)."""
    js = nc.jetstream()
    consumer = await js.consumer_info(stream, DURABLE)
    info = await js.stream_info(stream)
    return consumer.num_ack_pending, consumer.num_redelivered, info.state.messages


def nats_break(url: str, stream: str) -> list[Run]:
    """A job longer than AckWait, no heartbeats: worker-b gets it too."""
    jobs = Jobs()

    async def scenario() -> None:
        nc_a, nc_b = await work_queue(url, stream)
        try:
            sub_a = await nc_a.jetstream().pull_subscribe_bind(DURABLE, stream)
            sub_b = await nc_b.jetstream().pull_subscribe_bind(DURABLE, stream)
            [msg_a] = await sub_a.fetch(1, timeout=2)
            worker_a = asyncio.create_task(
                handle_without_heartbeats(msg_a, jobs.job("worker-a", JOB_SECONDS))
            )
            [msg_b] = await sub_b.fetch(1, timeout=5)  # AckWait ran out
            await handle_without_heartbeats(msg_b, jobs.job("worker-b", JOB_SECONDS))
            await asyncio.wait_for(worker_a, timeout=5)
        finally:
            await nc_a.close()
            await nc_b.close()

    asyncio.run(scenario())
    return jobs.runs


@dataclass
class NatsHeartbeat:
    """The same long job with heartbeats."""

    runs: list[Run]
    received_b: int
    state: tuple[int, int, int]


def nats_heartbeat(url: str, stream: str) -> NatsHeartbeat:
    """A job longer than AckWait with +WPI heartbeats; worker-b waits."""
    jobs = Jobs()

    async def scenario() -> tuple[int, tuple[int, int, int]]:
        nc_a, nc_b = await work_queue(url, stream)
        try:
            sub_a = await nc_a.jetstream().pull_subscribe_bind(DURABLE, stream)
            sub_b = await nc_b.jetstream().pull_subscribe_bind(DURABLE, stream)
            [msg_a] = await sub_a.fetch(1, timeout=2)

            async def worker_a() -> None:
                job = jobs.job("worker-a", JOB_SECONDS)
                await with_heartbeats(msg_a, job(msg_a), HEARTBEAT_EVERY)
                await msg_a.ack_sync()

            task = asyncio.create_task(worker_a())
            try:
                await sub_b.fetch(1, timeout=JOB_SECONDS + ACK_WAIT)
                received_b = 1
            except NatsTimeoutError:
                received_b = 0
            await asyncio.wait_for(task, timeout=5)
            return received_b, await queue_state(nc_a, stream)
        finally:
            await nc_a.close()
            await nc_b.close()

    received_b, state = asyncio.run(scenario())
    return NatsHeartbeat(jobs.runs, received_b, state)


@dataclass
class NatsCrash:
    """A worker process killed mid-job, and the worker that took over."""

    line: str
    returncode: int | None
    handled: int
    state: tuple[int, int, int]
    runs: list[Run]


def nats_crash(url: str, stream: str) -> NatsCrash:
    """worker-a (a process with heartbeats) is SIGKILLed; worker-b runs the loop."""
    jobs = Jobs()

    async def scenario() -> NatsCrash:
        nc_a, nc_b = await work_queue(url, stream)
        worker = spawn_worker("nats", url, stream, DURABLE)
        try:
            line = await asyncio.to_thread(wait_for_line, worker)
            await asyncio.to_thread(kill_hard, worker)
            returncode = worker.returncode
            sub_b = await nc_b.jetstream().pull_subscribe_bind(DURABLE, stream)
            stop = asyncio.Event()
            handled = await asyncio.wait_for(
                work_loop(
                    sub_b,
                    jobs.job("worker-b", 0.1, done=stop),
                    stop,
                    heartbeat_every=HEARTBEAT_EVERY,
                    retry_delay=ACK_WAIT,
                    fetch_timeout=0.5,
                ),
                timeout=10,
            )
            state = await queue_state(nc_a, stream)
            return NatsCrash(line, returncode, handled, state, jobs.runs)
        finally:
            kill_hard(worker)
            await nc_a.close()
            await nc_b.close()

    return asyncio.run(scenario())


def nats_shutdown(url: str, stream: str) -> list[Run]:
    """worker-a is cancelled mid-job with AckWait 30 s; worker-b fetches."""
    jobs = Jobs()

    async def scenario() -> None:
        nc_a, nc_b = await work_queue(url, stream, ack_wait=LONG_ACK_WAIT)
        try:
            sub_a = await nc_a.jetstream().pull_subscribe_bind(DURABLE, stream)
            sub_b = await nc_b.jetstream().pull_subscribe_bind(DURABLE, stream)
            started = asyncio.Event()

            async def long_job(msg: Msg) -> None:
                started.set()
                await jobs.job("worker-a", 60)(msg)

            worker_a = asyncio.create_task(
                work_loop(
                    sub_a,
                    long_job,
                    asyncio.Event(),
                    heartbeat_every=HEARTBEAT_EVERY,
                    retry_delay=1.0,
                )
            )
            await asyncio.wait_for(started.wait(), timeout=5)
            worker_a.cancel()  # shutdown
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(worker_a, timeout=5)
            # Only the nak can bring it back long before LONG_ACK_WAIT.
            [msg] = await sub_b.fetch(1, timeout=5)
            await jobs.job("worker-b", 0)(msg)
            await msg.ack_sync()
        finally:
            await nc_a.close()
            await nc_b.close()

    asyncio.run(scenario())
    return jobs.runs
