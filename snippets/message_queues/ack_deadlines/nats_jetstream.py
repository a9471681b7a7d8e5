"""Crash recovery on NATS JetStream: ack deadlines, heartbeats, naks and dead letters.

JetStream redelivers a message when its `AckWait` expires, also while a slow
but healthy worker is still on it. `with_heartbeats` sends `+WPI` progress acks
during a long job so the deadline only fires when the worker is really gone;
`work_loop` acks after success, terminates what can never succeed and naks
other failures with a growing delay. `dead_letter_on_max_deliveries` copies
each message that used up `MaxDeliver` to a dead-letter subject.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy

__all__ = [
    "MAX_DELIVERIES",
    "Job",
    "PermanentError",
    "create_work_queue",
    "dead_letter_on_max_deliveries",
    "handle_without_heartbeats",
    "nak_delay",
    "with_heartbeats",
    "work_loop",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

Job = Callable[[Msg], Awaitable[None]]
"""Processes one JetStream message; raising makes `work_loop` nak it."""


# --8<-- [start:nats-consumer]
async def create_work_queue(
    js: JetStreamContext,
    stream: str,
    durable: str,
    *,
    ack_wait: float,
    max_deliver: int,
    max_ack_pending: int = 1000,
) -> None:
    """Create a work-queue stream on `<stream>.>` and a durable pull consumer.

    Args:
        js: The JetStream context.
        stream: The stream name; its subjects are `<stream>.>`.
        durable: The durable consumer that all workers share.
        ack_wait: Seconds the server waits for an ack before redelivering.
        max_deliver: Deliveries per message before the server gives up.
        max_ack_pending: Messages out for processing at once.
    """
    await js.add_stream(
        name=stream,
        subjects=[f"{stream}.>"],
        retention=RetentionPolicy.WORK_QUEUE,
    )
    await js.add_consumer(
        stream,
        ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ack_wait,
            max_deliver=max_deliver,
            max_ack_pending=max_ack_pending,
        ),
    )


# --8<-- [end:nats-consumer]


# --8<-- [start:nats-naive]
async def handle_without_heartbeats(msg: Msg, job: Job) -> None:
    """Run the job, then ack: the hazard when the job outlives `AckWait`.

    Nothing tells the server that the worker is alive, so once `AckWait`
    passes it hands the message to the next worker that asks.
    """
    await job(msg)
    await msg.ack()


# --8<-- [end:nats-naive]


# --8<-- [start:nats-heartbeat]
async def with_heartbeats(msg: Msg, work: Awaitable[T], every: float) -> T:
    """Await `work`, sending a `+WPI` progress ack every `every` seconds.

    Each `+WPI` restarts the message's `AckWait`, so pick `every` well below
    it (a third leaves room for two lost heartbeats). When this coroutine is
    cancelled, the work is cancelled too.
    """
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=every)
            if done:
                return task.result()
            await msg.in_progress()
    finally:
        task.cancel()  # no-op when the work is done


# --8<-- [end:nats-heartbeat]


# --8<-- [start:nats-worker]
class PermanentError(Exception):
    """Retrying cannot help (a malformed payload): the message is terminated."""


def nak_delay(delivery: int, base: float, cap: float) -> float:
    """`base` after the first failure, doubled after each one, at most `cap`."""
    return float(min(cap, base * 2 ** (delivery - 1)))


async def work_loop(
    sub: JetStreamContext.PullSubscription,
    job: Job,
    stop: asyncio.Event,
    *,
    heartbeat_every: float,
    retry_delay: float,
    max_retry_delay: float = 60.0,
    fetch_timeout: float = 1.0,
) -> int:
    """Fetch one message at a time and run `job` on it until `stop` is set.

    Success: a double ack (`ack_sync`), so you know the server recorded it.
    `PermanentError`: `term()`, the server never redelivers it. Any other
    failure: a nak whose delay starts at `retry_delay` and doubles per
    delivery. Cancellation (shutdown): a nak without delay, so another worker
    gets the message now. A crash sends nothing: redelivery after `AckWait`.

    Returns:
        How many messages were processed and acknowledged.
    """
    handled = 0
    while not stop.is_set():
        try:
            msgs = await sub.fetch(1, timeout=fetch_timeout)
        except nats.errors.TimeoutError:
            continue
        for msg in msgs:
            if await _run(msg, job, heartbeat_every, retry_delay, max_retry_delay):
                handled += 1
    return handled


async def _run(
    msg: Msg, job: Job, heartbeat_every: float, base: float, cap: float
) -> bool:
    seq, delivery = msg.metadata.sequence.stream, msg.metadata.num_delivered
    try:
        await with_heartbeats(msg, job(msg), heartbeat_every)
    except asyncio.CancelledError:
        await msg.nak()
        raise
    except PermanentError:
        log.exception("message %s cannot be processed; terminating it", seq)
        await msg.term()
        return False
    except Exception:
        log.exception("message %s failed (delivery %s)", seq, delivery)
        await msg.nak(delay=nak_delay(delivery, base, cap))
        return False
    try:
        await msg.ack_sync()
    except nats.errors.TimeoutError:
        log.warning("ack not confirmed; the message may come back")
        return False
    return True


# --8<-- [end:nats-worker]


# --8<-- [start:nats-dead-letter]
MAX_DELIVERIES = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{consumer}"


async def dead_letter_on_max_deliveries(
    nc: NatsClient,
    stream: str,
    consumer: str,
    dead_subject: str,
    *,
    on_dead: Callable[[int], None] | None = None,
) -> Subscription:
    """Copy each message that used up `MaxDeliver` to `dead_subject`.

    The server gives up on such a message silently for the consumer, but
    publishes an advisory with its stream sequence. The copy keeps the body
    and headers; then the message is deleted from the work queue, which
    would otherwise keep it. Advisories are plain NATS messages: one sent
    while nobody listens is gone, so run this beside the workers (or capture
    the advisory subject in a stream of its own).
    """
    js = nc.jetstream()

    async def on_advisory(advisory: Msg) -> None:
        event = json.loads(advisory.data)
        seq, deliveries = int(event["stream_seq"]), int(event["deliveries"])
        original = await js.get_msg(stream, seq)
        headers = {
            **(original.headers or {}),
            "Dead-Letter-Stream": stream,
            "Dead-Letter-Seq": str(seq),
            "Dead-Letter-Deliveries": str(deliveries),
        }
        await js.publish(dead_subject, original.data or b"", headers=headers)
        await js.delete_msg(stream, seq)
        log.error("message %s dead-lettered after %s deliveries", seq, deliveries)
        if on_dead is not None:
            on_dead(seq)

    subject = MAX_DELIVERIES.format(stream=stream, consumer=consumer)
    return await nc.subscribe(subject, cb=on_advisory)


# --8<-- [end:nats-dead-letter]
