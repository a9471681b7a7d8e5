"""NATS JetStream scenarios of the ack-deadlines demos and tests.

A job that runs longer than the consumer's AckWait, with and without ``+WPI``
heartbeats, a worker process killed mid-job, and a worker cancelled at
shutdown, against a real NATS server with JetStream; each scenario returns
the runs it recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import nats as nats_py
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig

from snippets.message_queues.ack_deadlines import (
    Job,
    create_work_queue,
    handle_without_heartbeats,
    with_heartbeats,
    work_loop,
)
from snippets.support.message_queues_ack_deadlines_workers import (
    ACK_WAIT,
    DURABLE,
    HEARTBEAT_EVERY,
    JOB_SECONDS,
    LONG_ACK_WAIT,
    kill_hard,
    spawn_worker,
    wait_for_line,
)

__all__ = [
    "Jobs",
    "NatsCrash",
    "NatsHeartbeat",
    "Run",
    "nats_break",
    "nats_connect",
    "nats_crash",
    "nats_defaults",
    "nats_heartbeat",
    "nats_shutdown",
    "queue_state",
    "work_queue",
]


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
