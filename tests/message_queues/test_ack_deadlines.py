"""Crash recovery and ack deadlines, against real Redis and NATS JetStream servers.

Each crash is a real worker process killed with SIGKILL between reading a
message and acknowledging it. Run as a module, this file is that worker:
``python -m tests.message_queues.test_ack_deadlines redis|nats ARGS...``.
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
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import nats as nats_py
import pytest
import redis as redis_py
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig

from snippets.message_queues.ack_deadlines import (
    Fields,
    Job,
    PermanentError,
    consume,
    create_work_queue,
    dead_letter_on_max_deliveries,
    ensure_group,
    handle_without_heartbeats,
    reclaim_idle,
    run_reclaimer,
    with_heartbeats,
    work_loop,
)
from tests.conftest import Nats, OutputCheck, Redis

ROOT = Path(__file__).resolve().parents[2]
GROUP = "workers"
DURABLE = "workers"
ACK_WAIT = 1.0  # seconds; short so the tests are quick
JOB_SECONDS = 2.2  # a "long" job: more than twice ACK_WAIT
HEARTBEAT_EVERY = 0.3  # well below ACK_WAIT
LONG_ACK_WAIT = 30.0  # for tests where only a nak may bring a message back


# --------------------------------------------------------------------------- #
# Worker processes that the tests kill
# --------------------------------------------------------------------------- #


def spawn_worker(*args: str) -> subprocess.Popen[str]:
    """Start this module as a worker process."""
    path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.message_queues.test_ack_deadlines", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(proc: subprocess.Popen[str], timeout: float = 10.0) -> str:
    """The worker's next stdout line, or fail after `timeout` seconds."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        proc.kill()
        _, err = proc.communicate(timeout=5)
        raise AssertionError(f"worker printed nothing in {timeout} s; stderr:\n{err}")
    return proc.stdout.readline().strip()


def kill_hard(proc: subprocess.Popen[str]) -> None:
    """SIGKILL: no finally blocks, no ack, no goodbye to the broker."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)


def _redis_worker(url: str, stream: str, consumer: str) -> None:
    client = redis_py.Redis.from_url(url, decode_responses=True, socket_timeout=5)

    def handler(entry_id: str, fields: Fields) -> None:
        print(f"started {entry_id}", flush=True)
        time.sleep(60)  # "working" until killed

    consume(client, stream, GROUP, consumer, handler, threading.Event())


async def _nats_worker(url: str, stream: str, durable: str) -> None:
    nc = await nats_py.connect(url, connect_timeout=2)
    sub = await nc.jetstream().pull_subscribe_bind(durable, stream)

    async def job(msg: Msg) -> None:
        print(f"started delivery {msg.metadata.num_delivered}", flush=True)
        await asyncio.sleep(60)  # "working" until killed

    await work_loop(
        sub,
        job,
        asyncio.Event(),
        heartbeat_every=HEARTBEAT_EVERY,
        retry_delay=ACK_WAIT,
    )


# --------------------------------------------------------------------------- #
# Redis Streams
# --------------------------------------------------------------------------- #


@pytest.fixture
def client(redis: Redis) -> Iterator[redis_py.Redis]:
    """A client on the `redis` fixture's server; it logs the server version."""
    client = redis_py.Redis.from_url(redis.url, decode_responses=True, socket_timeout=5)
    print("Redis server", client.info("server")["redis_version"])
    yield client
    client.close()


def crash_redis_worker(client: redis_py.Redis, stream: str, url: str) -> str:
    """Add one entry; worker-1 reads it and is killed before XACK."""
    ensure_group(client, stream, GROUP)
    entry_id = str(client.xadd(stream, {"job": "resize-42"}))
    worker = spawn_worker("redis", url, stream, "worker-1")
    try:
        line = wait_for_line(worker)
    finally:
        kill_hard(worker)
    assert line == f"started {entry_id}"
    assert worker.returncode == -signal.SIGKILL
    return entry_id


def delivery(client: redis_py.Redis, stream: str, entry_id: str) -> tuple[str, int]:
    """The entry's owner and delivery counter (XPENDING, extended form)."""
    [row] = client.xpending_range(stream, GROUP, entry_id, entry_id, 1)
    return str(row["consumer"]), int(row["times_delivered"])


def test_redis_crashed_consumers_entry_stays_pending_for_ever(
    redis: Redis, client: redis_py.Redis, expected_output: OutputCheck
) -> None:
    stream = redis.key("jobs")
    entry_id = crash_redis_worker(client, stream, redis.url)

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
    assert (handled, seen) == (0, [])
    assert summary["pending"] == 1
    assert row["message_id"] == entry_id
    assert row["consumer"] == "worker-1"
    assert row["times_delivered"] == 1
    assert int(row["time_since_delivered"]) >= 1000
    expected_output(
        "message_queues/ack_deadlines.redis-break",
        "\n".join(
            [
                "worker-1 read 1 entry and was killed (SIGKILL) before XACK",
                f"worker-2 read '>' for 1 s: {len(seen)} entries",
                f"XPENDING: {summary['pending']} pending, owner {row['consumer']}, "
                f"delivered {row['times_delivered']} time",
                f"handled: {handled}",
            ]
        ),
    )


def test_redis_restart_under_the_same_name_finishes_own_pending_entries(
    redis: Redis, client: redis_py.Redis, expected_output: OutputCheck
) -> None:
    stream = redis.key("jobs")
    entry_id = crash_redis_worker(client, stream, redis.url)

    seen: list[tuple[str, str, int]] = []
    stop = threading.Event()
    guard = threading.Timer(5.0, stop.set)
    guard.start()

    def handler(entry: str, fields: Fields) -> None:
        seen.append((entry, *delivery(client, stream, entry)))
        stop.set()

    handled = consume(client, stream, GROUP, "worker-1", handler, stop)
    guard.cancel()

    pending = client.xpending(stream, GROUP)["pending"]
    assert seen == [(entry_id, "worker-1", 2)]
    assert (handled, pending) == (1, 0)
    expected_output(
        "message_queues/ack_deadlines.redis-restart",
        "\n".join(
            [
                "worker-1 killed before XACK, restarted under the same name",
                f"own pending entries read with id 0: {len(seen)}, "
                f"delivered {seen[0][2]} times",
                f"handled: {handled}, pending: {pending}",
            ]
        ),
    )


def test_redis_reclaimer_recovers_a_crashed_consumers_entry(
    redis: Redis, client: redis_py.Redis, expected_output: OutputCheck
) -> None:
    stream, dead = redis.key("jobs"), redis.key("jobs-dead")
    entry_id = crash_redis_worker(client, stream, redis.url)

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
        assert done.wait(timeout=5), "the reclaimer never claimed the entry"
    finally:
        stop.set()
        reclaimer.join(timeout=5)
    assert not reclaimer.is_alive()

    pending = client.xpending(stream, GROUP)["pending"]
    assert seen == [(entry_id, "reclaimer", 2)]
    assert pending == 0
    assert client.xlen(dead) == 0
    expected_output(
        "message_queues/ack_deadlines.redis-reclaim",
        "\n".join(
            [
                "worker-1 killed before XACK; its name never comes back",
                f"reclaimer (XAUTOCLAIM, min-idle 500 ms) handled: {len(seen)}",
                f"owner {seen[0][1]}, delivered {seen[0][2]} times",
                f"pending: {pending}, dead-lettered: {client.xlen(dead)}",
            ]
        ),
    )


def test_two_reclaimers_never_handle_one_entry_twice(
    redis: Redis, client: redis_py.Redis
) -> None:
    """Each entry takes well under min-idle to handle, all of them together more.

    Reclaimer A starts on eight entries a dead consumer left pending; reclaimer
    B starts once A has handled six. An entry that A claimed but has not reached
    yet has been idle for longer than min-idle by then, and B would take it too.
    """
    stream, dead = redis.key("jobs"), redis.key("jobs-dead")
    ensure_group(client, stream, GROUP)
    ids = [str(client.xadd(stream, {"job": f"job-{n}"})) for n in range(8)]
    client.xreadgroup(GROUP, "worker-1", {stream: ">"})  # then it dies
    min_idle_ms, work_s = 1500, 0.3
    handled: Counter[str] = Counter()
    lock = threading.Lock()
    six_done = threading.Event()

    def slow(entry: str, fields: Fields) -> None:
        time.sleep(work_s)  # the work itself, well under min-idle
        with lock:
            handled[entry] += 1
            if sum(handled.values()) >= 6:
                six_done.set()

    def fast(entry: str, fields: Fields) -> None:
        with lock:
            handled[entry] += 1

    options: dict[str, Any] = {
        "min_idle_ms": min_idle_ms,
        "max_deliveries": 3,
        "dead_letter": dead,
    }
    pending = client.xpending_range(stream, GROUP, "-", "+", 10, idle=min_idle_ms)
    deadline = time.monotonic() + 10
    while len(pending) < len(ids):  # until worker-1's entries are reclaimable
        assert time.monotonic() < deadline
        time.sleep(0.05)
        pending = client.xpending_range(stream, GROUP, "-", "+", 10, idle=min_idle_ms)
    a = threading.Thread(
        target=reclaim_idle, args=(client, stream, GROUP, "a", slow), kwargs=options
    )
    a.start()
    try:
        assert six_done.wait(timeout=10)
        reclaim_idle(client, stream, GROUP, "b", fast, **options)
    finally:
        a.join(timeout=10)
    assert not a.is_alive()
    assert sorted(handled) == sorted(ids)
    assert set(handled.values()) == {1}, f"handled twice: {handled}"
    assert client.xpending(stream, GROUP)["pending"] == 0


def test_redis_entry_delivered_too_often_goes_to_the_dead_letter_stream(
    redis: Redis, client: redis_py.Redis, expected_output: OutputCheck
) -> None:
    stream, dead = redis.key("jobs"), redis.key("jobs-dead")
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
    assert not any(thread.is_alive() for thread in threads)

    [(_, dead_fields)] = client.xrange(dead) or []
    record = {str(k): str(v) for k, v in (dead_fields or {}).items()}
    pending = client.xpending(stream, GROUP)["pending"]
    assert attempts == [entry_id] * 3
    assert record == {
        "job": "resize-42",
        "dead-letter-source": f"{stream} {entry_id}",
        "dead-letter-deliveries": "4",
    }
    assert pending == 0
    expected_output(
        "message_queues/ack_deadlines.redis-dead-letter",
        "\n".join(
            [
                "handler fails every time; max deliveries 3",
                f"attempts: {len(attempts)}",
                f"dead-lettered: {client.xlen(dead)}, "
                f"on delivery {record['dead-letter-deliveries']}",
                f"fields kept: job={record['job']}",
                f"pending: {pending}",
            ]
        ),
    )


# --------------------------------------------------------------------------- #
# NATS JetStream
# --------------------------------------------------------------------------- #


async def nats_connect(url: str) -> NatsClient:
    nc = await nats_py.connect(url, connect_timeout=2, max_reconnect_attempts=0)
    print("NATS server", nc.connected_server_version)
    return nc


def test_nats_consumer_defaults_on_this_server(
    nats: Nats, expected_output: OutputCheck
) -> None:
    stream = nats.name("defaults")

    async def scenario() -> ConsumerConfig:
        nc = await nats_connect(nats.url)
        try:
            js = nc.jetstream()
            await js.add_stream(name=stream, subjects=[f"{stream}.>"])
            info = await js.add_consumer(
                stream, ConsumerConfig(durable_name="d", ack_policy=AckPolicy.EXPLICIT)
            )
            return info.config
        finally:
            await nc.close()

    config = asyncio.run(scenario())
    assert (config.ack_wait, config.max_deliver, config.max_ack_pending) == (
        30.0,
        -1,
        1000,
    )
    expected_output(
        "message_queues/ack_deadlines.nats-defaults",
        "\n".join(
            [
                f"ack_wait: {config.ack_wait} s",
                f"max_deliver: {config.max_deliver}",
                f"max_ack_pending: {config.max_ack_pending}",
            ]
        ),
    )


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
    nc_b = await nats_py.connect(url, connect_timeout=2, max_reconnect_attempts=0)
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


def test_nats_without_heartbeats_a_long_job_runs_twice(
    nats: Nats, expected_output: OutputCheck
) -> None:
    stream = nats.name("jobs")
    jobs = Jobs()

    async def scenario() -> None:
        nc_a, nc_b = await work_queue(nats.url, stream)
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
    first, second = jobs.runs
    assert (first.worker, first.delivery) == ("worker-a", 1)
    assert (second.worker, second.delivery) == ("worker-b", 2)
    assert first.finished is not None
    assert second.started < first.finished  # both worked on it at once
    expected_output(
        "message_queues/ack_deadlines.nats-break",
        "\n".join(
            [
                f"AckWait {ACK_WAIT} s; job {JOB_SECONDS} s; no heartbeats",
                f"{first.worker} started delivery {first.delivery}",
                f"{second.worker} started delivery {second.delivery} "
                f"while {first.worker} was still working",
                f"job runs: {len(jobs.runs)} (duplicate work)",
            ]
        ),
    )


def test_nats_heartbeats_keep_a_long_job_from_being_redelivered(
    nats: Nats, expected_output: OutputCheck
) -> None:
    stream = nats.name("jobs")
    jobs = Jobs()

    async def scenario() -> tuple[int, tuple[int, int, int]]:
        nc_a, nc_b = await work_queue(nats.url, stream)
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

    received_b, (ack_pending, redelivered, left) = asyncio.run(scenario())
    [run] = jobs.runs
    assert run.finished is not None
    ran_past_ack_wait = run.finished - run.started > 2 * ACK_WAIT
    assert (run.worker, run.delivery, ran_past_ack_wait) == ("worker-a", 1, True)
    assert received_b == 0
    assert (ack_pending, redelivered, left) == (0, 0, 0)
    expected_output(
        "message_queues/ack_deadlines.nats-heartbeat",
        "\n".join(
            [
                f"AckWait {ACK_WAIT} s; job {JOB_SECONDS} s; "
                f"+WPI every {HEARTBEAT_EVERY} s",
                f"{run.worker} ran delivery {run.delivery} for "
                f"{'over' if ran_past_ack_wait else 'under'} 2 x AckWait",
                f"worker-b received: {received_b}",
                f"job runs: {len(jobs.runs)}, redelivered: {redelivered}, "
                f"ack pending: {ack_pending}, left in stream: {left}",
            ]
        ),
    )


def test_nats_killed_worker_message_is_redelivered_after_ack_wait(
    nats: Nats, expected_output: OutputCheck
) -> None:
    stream = nats.name("jobs")
    jobs = Jobs()

    async def scenario() -> tuple[str, int, tuple[int, int, int]]:
        nc_a, nc_b = await work_queue(nats.url, stream)
        worker = spawn_worker("nats", nats.url, stream, DURABLE)
        try:
            line = await asyncio.to_thread(wait_for_line, worker)
            await asyncio.to_thread(kill_hard, worker)
            assert worker.returncode == -signal.SIGKILL
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
            return line, handled, await queue_state(nc_a, stream)
        finally:
            kill_hard(worker)
            await nc_a.close()
            await nc_b.close()

    line, handled, (ack_pending, redelivered, left) = asyncio.run(scenario())
    [run] = jobs.runs
    assert line == "started delivery 1"
    assert (run.worker, run.delivery, handled) == ("worker-b", 2, 1)
    assert (ack_pending, redelivered, left) == (0, 0, 0)
    expected_output(
        "message_queues/ack_deadlines.nats-crash",
        "\n".join(
            [
                f"worker-a (a process) {line}, +WPI every {HEARTBEAT_EVERY} s",
                "worker-a killed with SIGKILL mid-job: heartbeats stop",
                f"{run.worker} handled delivery {run.delivery} once AckWait ran out",
                f"handled: {handled}, ack pending: {ack_pending}, "
                f"left in stream: {left}",
            ]
        ),
    )


def test_nats_failed_job_is_naked_and_retried_after_the_delay(nats: Nats) -> None:
    stream = nats.name("jobs")
    deliveries: list[int] = []

    async def scenario() -> int:
        nc_a, nc_b = await work_queue(nats.url, stream, ack_wait=LONG_ACK_WAIT)
        stop = asyncio.Event()

        async def flaky(msg: Msg) -> None:
            deliveries.append(msg.metadata.num_delivered)
            if msg.metadata.num_delivered == 1:
                raise ConnectionError("thumbnail service unavailable")
            stop.set()

        try:
            sub = await nc_a.jetstream().pull_subscribe_bind(DURABLE, stream)
            return await asyncio.wait_for(
                work_loop(
                    sub,
                    flaky,
                    stop,
                    heartbeat_every=HEARTBEAT_EVERY,
                    retry_delay=0.2,
                    fetch_timeout=0.5,
                ),
                timeout=10,  # far below LONG_ACK_WAIT: only the nak explains it
            )
        finally:
            await nc_a.close()
            await nc_b.close()

    handled = asyncio.run(scenario())
    assert (deliveries, handled) == ([1, 2], 1)


def test_nats_cancelled_worker_hands_the_message_back_at_once(
    nats: Nats, expected_output: OutputCheck
) -> None:
    stream = nats.name("jobs")
    jobs = Jobs()

    async def scenario() -> list[Run]:
        nc_a, nc_b = await work_queue(nats.url, stream, ack_wait=LONG_ACK_WAIT)
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
            return jobs.runs
        finally:
            await nc_a.close()
            await nc_b.close()

    first, run = asyncio.run(scenario())
    assert (first.worker, first.delivery, first.finished) == ("worker-a", 1, None)
    assert (run.worker, run.delivery) == ("worker-b", 2)
    expected_output(
        "message_queues/ack_deadlines.nats-shutdown",
        "\n".join(
            [
                f"AckWait {LONG_ACK_WAIT} s",
                "worker-a cancelled mid-job (shutdown): nak without delay",
                f"{run.worker} got delivery {run.delivery} within 5 s",
            ]
        ),
    )


if __name__ == "__main__":
    match sys.argv[1:]:
        case ["redis", url, stream, consumer]:
            _redis_worker(url, stream, consumer)
        case ["nats", url, stream, durable]:
            asyncio.run(_nats_worker(url, stream, durable))
        case _:
            sys.exit("usage: redis URL STREAM CONSUMER | nats URL STREAM DURABLE")


# --------------------------------------------------------------------------- #
# NATS: when retrying cannot help, and when MaxDeliver runs out
# --------------------------------------------------------------------------- #


async def until_settled(nc: NatsClient, stream: str, stop: asyncio.Event) -> None:
    """Set ``stop`` once nothing is pending or out for processing."""
    js = nc.jetstream()
    while True:
        info = await js.consumer_info(stream, DURABLE)
        if info.num_ack_pending == 0 and info.num_pending == 0:
            stop.set()
            return
        await asyncio.sleep(0.05)


def test_nats_permanent_error_is_terminated_not_retried(nats: Nats) -> None:
    stream = nats.name("jobs")
    deliveries: list[int] = []

    async def scenario() -> tuple[int, int]:
        nc_a, nc_b = await work_queue(nats.url, stream, ack_wait=LONG_ACK_WAIT)

        async def broken(msg: Msg) -> None:
            deliveries.append(msg.metadata.num_delivered)
            raise PermanentError("not an image")

        try:
            sub = await nc_a.jetstream().pull_subscribe_bind(DURABLE, stream)
            stop = asyncio.Event()
            watcher = asyncio.create_task(until_settled(nc_b, stream, stop))
            handled = await asyncio.wait_for(
                work_loop(
                    sub,
                    broken,
                    stop,
                    heartbeat_every=HEARTBEAT_EVERY,
                    retry_delay=0.1,
                    fetch_timeout=0.5,
                ),
                timeout=10,
            )
            await watcher
            left = (await nc_b.jetstream().stream_info(stream)).state.messages
            return handled, left
        finally:
            await nc_a.close()
            await nc_b.close()

    handled, left = asyncio.run(scenario())
    assert deliveries == [1]  # terminated: the server never redelivers it
    assert handled == 0
    assert left == 0  # and, on a work-queue stream, removed


def test_nats_nak_delay_grows_with_each_delivery(nats: Nats) -> None:
    stream = nats.name("jobs")
    seen: list[tuple[int, float]] = []

    async def scenario() -> None:
        nc_a, nc_b = await work_queue(nats.url, stream, ack_wait=LONG_ACK_WAIT)
        stop = asyncio.Event()

        async def failing(msg: Msg) -> None:
            seen.append((msg.metadata.num_delivered, time.monotonic()))
            if len(seen) == 4:
                stop.set()
            raise ConnectionError("thumbnail service unavailable")

        try:
            sub = await nc_a.jetstream().pull_subscribe_bind(DURABLE, stream)
            await asyncio.wait_for(
                work_loop(
                    sub,
                    failing,
                    stop,
                    heartbeat_every=HEARTBEAT_EVERY,
                    retry_delay=0.2,
                    fetch_timeout=0.5,
                ),
                timeout=15,
            )
        finally:
            await nc_a.close()
            await nc_b.close()

    asyncio.run(scenario())
    assert [n for n, _ in seen] == [1, 2, 3, 4]
    gaps = [later - earlier for (_, earlier), (_, later) in pairwise(seen)]
    # naks of 0.2, 0.4 and 0.8 s: each gap is at least its delay
    for gap, delay in zip(gaps, [0.2, 0.4, 0.8], strict=True):
        assert gap >= delay * 0.95, gaps


def test_nats_max_deliveries_advisory_dead_letters_the_message(nats: Nats) -> None:
    stream, dead = nats.name("jobs"), nats.name("dead")
    dead_subject = f"dead.{stream}"

    async def scenario() -> tuple[list[int], bytes, dict[str, str], int]:
        nc_a, nc_b = await work_queue(nats.url, stream, ack_wait=LONG_ACK_WAIT)
        js = nc_b.jetstream()
        await js.add_stream(name=dead, subjects=[dead_subject])
        deliveries: list[int] = []
        dead_lettered = asyncio.Event()
        watcher = await dead_letter_on_max_deliveries(
            nc_b, stream, DURABLE, dead_subject, on_dead=lambda _: dead_lettered.set()
        )

        async def failing(msg: Msg) -> None:
            deliveries.append(msg.metadata.num_delivered)
            raise ConnectionError("thumbnail service unavailable")

        try:
            sub = await nc_a.jetstream().pull_subscribe_bind(DURABLE, stream)
            stop = asyncio.Event()
            loop = asyncio.create_task(
                work_loop(
                    sub,
                    failing,
                    stop,
                    heartbeat_every=HEARTBEAT_EVERY,
                    retry_delay=0.05,
                    fetch_timeout=0.5,
                )
            )
            await asyncio.wait_for(dead_lettered.wait(), timeout=15)
            stop.set()
            await asyncio.wait_for(loop, timeout=5)
            copy = await js.get_msg(dead, subject=dead_subject)
            left = (await js.stream_info(stream)).state.messages
            return deliveries, copy.data or b"", dict(copy.headers or {}), left
        finally:
            await watcher.unsubscribe()
            await nc_a.close()
            await nc_b.close()

    deliveries, body, headers, left = asyncio.run(scenario())
    assert deliveries == [1, 2, 3, 4, 5]  # max_deliver=5 in work_queue()
    assert body == b"resize-42"
    assert headers["Dead-Letter-Deliveries"] == "5"
    assert headers["Dead-Letter-Stream"] == stream
    assert left == 0  # removed from the work queue once it was copied
