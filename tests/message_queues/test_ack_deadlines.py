"""Crash recovery and ack deadlines, against real Redis and NATS JetStream servers.

Each crash is a real worker process killed with SIGKILL between reading a
message and acknowledging it (snippets/support/message_queues_ack_deadlines_child.py).
The scenarios the page shows live in snippets/support/message_queues_ack_deadlines.py;
these tests assert on what each of them observed.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest
import redis as redis_py
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from snippets.message_queues.ack_deadlines import (
    Fields,
    PermanentError,
    dead_letter_on_max_deliveries,
    ensure_group,
    reclaim_idle,
    work_loop,
)
from snippets.support import message_queues_ack_deadlines as harness
from snippets.support.message_queues_ack_deadlines import (
    ACK_WAIT,
    DURABLE,
    GROUP,
    HEARTBEAT_EVERY,
    LONG_ACK_WAIT,
    nats_connect,
    work_queue,
)
from tests.conftest import Nats, Redis

# --------------------------------------------------------------------------- #
# Redis Streams
# --------------------------------------------------------------------------- #


@pytest.fixture
def client(redis: Redis) -> Iterator[redis_py.Redis]:
    """A client on the `redis` fixture's server; it logs the server version."""
    client = harness.redis_client(redis.url)
    print("Redis server", client.info("server")["redis_version"])
    yield client
    client.close()


def test_redis_crashed_consumers_entry_stays_pending_for_ever(
    redis: Redis, client: redis_py.Redis
) -> None:
    result = harness.redis_break(client, redis.key("jobs"), redis.url)
    assert (result.handled, result.seen) == (0, [])
    assert result.pending == 1
    assert result.pending_id == result.entry_id
    assert result.owner == "worker-1"
    assert result.delivered == 1
    assert result.idle_ms >= 1000


def test_redis_restart_under_the_same_name_finishes_own_pending_entries(
    redis: Redis, client: redis_py.Redis
) -> None:
    result = harness.redis_restart(client, redis.key("jobs"), redis.url)
    assert result.seen == [(result.entry_id, "worker-1", 2)]
    assert (result.handled, result.pending) == (1, 0)


def test_redis_reclaimer_recovers_a_crashed_consumers_entry(
    redis: Redis, client: redis_py.Redis
) -> None:
    stream, dead = redis.key("jobs"), redis.key("jobs-dead")
    result = harness.redis_reclaim(client, stream, dead, redis.url)
    assert result.seen == [(result.entry_id, "reclaimer", 2)]
    assert result.pending == 0
    assert result.dead_lettered == 0
    assert client.xlen(dead) == 0


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
    redis: Redis, client: redis_py.Redis
) -> None:
    stream, dead = redis.key("jobs"), redis.key("jobs-dead")
    result = harness.redis_dead_letter(client, stream, dead)
    assert result.attempts == [result.entry_id] * 3
    assert result.dead_lettered == 1
    assert result.record == {
        "job": "resize-42",
        "dead-letter-source": f"{stream} {result.entry_id}",
        "dead-letter-deliveries": "4",
    }
    assert result.pending == 0


# --------------------------------------------------------------------------- #
# NATS JetStream
# --------------------------------------------------------------------------- #


@pytest.fixture(autouse=True)
def _nats_version(request: pytest.FixtureRequest) -> None:
    """Log the NATS server version for tests that use the `nats` fixture."""
    if "nats" not in request.fixturenames:
        return
    nats: Nats = request.getfixturevalue("nats")

    async def version() -> str:
        nc = await nats_connect(nats.url)
        try:
            return str(nc.connected_server_version)
        finally:
            await nc.close()

    print("NATS server", asyncio.run(version()))


def test_nats_consumer_defaults_on_this_server(nats: Nats) -> None:
    config = harness.nats_defaults(nats.url, nats.name("defaults"))
    assert (config.ack_wait, config.max_deliver, config.max_ack_pending) == (
        30.0,
        -1,
        1000,
    )


def test_nats_without_heartbeats_a_long_job_runs_twice(nats: Nats) -> None:
    first, second = harness.nats_break(nats.url, nats.name("jobs"))
    assert (first.worker, first.delivery) == ("worker-a", 1)
    assert (second.worker, second.delivery) == ("worker-b", 2)
    assert first.finished is not None
    assert second.started < first.finished  # both worked on it at once


def test_nats_heartbeats_keep_a_long_job_from_being_redelivered(nats: Nats) -> None:
    result = harness.nats_heartbeat(nats.url, nats.name("jobs"))
    [run] = result.runs
    assert run.finished is not None
    ran_past_ack_wait = run.finished - run.started > 2 * ACK_WAIT
    assert (run.worker, run.delivery, ran_past_ack_wait) == ("worker-a", 1, True)
    assert result.received_b == 0
    assert result.state == (0, 0, 0)  # ack pending, redelivered, left in stream


def test_nats_killed_worker_message_is_redelivered_after_ack_wait(
    nats: Nats,
) -> None:
    result = harness.nats_crash(nats.url, nats.name("jobs"))
    [run] = result.runs
    assert result.line == "started delivery 1"
    assert result.returncode == -signal.SIGKILL
    # (seen once under load: worker-b got delivery 1; the whole result says more)
    assert (run.worker, run.delivery, result.handled) == ("worker-b", 2, 1), result
    assert result.state == (0, 0, 0)  # ack pending, redelivered, left in stream


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


def test_nats_cancelled_worker_hands_the_message_back_at_once(nats: Nats) -> None:
    first, run = harness.nats_shutdown(nats.url, nats.name("jobs"))
    assert (first.worker, first.delivery, first.finished) == ("worker-a", 1, None)
    assert (run.worker, run.delivery) == ("worker-b", 2)


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
