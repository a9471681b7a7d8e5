"""Crash recovery and ack deadlines on Redis Streams and NATS JetStream.

A consumer that dies between reading a message and acknowledging it leaves the
message with the broker as "delivered, not acknowledged". What happens next is
up to the broker and to you:

* Redis Streams keeps the entry in the consumer group's Pending Entries List
  (PEL) for ever. Nobody reading new entries (`>`) sees it again. `consume`
  acks only after the handler returns and, on start, drains its own pending
  entries first; `reclaim_idle` moves entries idle longer than a threshold to a
  live consumer with `XAUTOCLAIM` and dead-letters those delivered too often.
* NATS JetStream redelivers a message when its `AckWait` expires, also while
  a slow but healthy worker is still on it. `with_heartbeats` sends `+WPI`
  progress acks during a long job so the deadline only fires when the worker
  is really gone; `work_loop` acks after success and naks on failure.

The Redis functions need a client made with ``decode_responses=True`` and a
``socket_timeout`` longer than the blocking read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import nats.errors
import redis
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy
from redis.typing import EncodableT, FieldT

log = logging.getLogger(__name__)

T = TypeVar("T")

Fields = dict[str, str]
"""The field-value pairs of one stream entry."""

Handler = Callable[[str, Fields], None]
"""Processes one entry, given its id and fields; raising leaves it pending."""

Job = Callable[[Msg], Awaitable[None]]
"""Processes one JetStream message; raising makes `work_loop` nak it."""


def ensure_group(client: redis.Redis, stream: str, group: str) -> None:
    """Create the consumer group (and the stream) unless it exists.

    Args:
        client: A Redis client.
        stream: The stream key.
        group: The consumer group; it starts at the beginning of the stream.
    """
    try:
        client.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise


def _entries(reply: object) -> list[tuple[str, Fields | None]]:
    """The entries of an XREADGROUP reply (redis-py's list-of-streams shape)."""
    streams = cast("list[tuple[str, list[tuple[str, Fields | None]]]]", reply)
    return [(entry_id, fields) for _, batch in streams for entry_id, fields in batch]


def _handle(
    client: redis.Redis,
    stream: str,
    group: str,
    handler: Handler,
    entry_id: str,
    fields: Fields,
) -> bool:
    """Run the handler, then XACK. A failure leaves the entry pending."""
    try:
        handler(entry_id, fields)
    except Exception:
        log.exception("entry %s failed; it stays pending", entry_id)
        return False
    client.xack(stream, group, entry_id)
    return True


# --8<-- [start:redis-consumer]
def consume(
    client: redis.Redis,
    stream: str,
    group: str,
    consumer: str,
    handler: Handler,
    stop: threading.Event,
    *,
    count: int = 10,
    block_ms: int = 1000,
) -> int:
    """Process this consumer's pending entries, then new ones, until `stop` is set.

    An entry is acknowledged (XACK) only after `handler` returns, so a crash
    in between leaves it in the group's PEL instead of losing it. On start the
    loop reads its own PEL (id `0`, then after the last id seen) so a consumer
    that restarts under the same name finishes what it had; then it reads `>`.

    Returns:
        How many entries were handled and acknowledged.
    """
    handled = 0
    cursor = "0"  # own pending entries first; ">" once they are done
    while not stop.is_set():
        block = block_ms if cursor == ">" else None
        reply = client.xreadgroup(
            group, consumer, {stream: cursor}, count=count, block=block
        )
        entries = _entries(reply)
        if cursor != ">" and not entries:
            cursor = ">"
            continue
        for entry_id, fields in entries:
            if cursor != ">":
                cursor = entry_id  # never re-read an entry that just failed
            if fields is None:  # deleted from the stream while pending
                client.xack(stream, group, entry_id)
            elif _handle(client, stream, group, handler, entry_id, fields):
                handled += 1
    return handled


# --8<-- [end:redis-consumer]


@dataclass
class ReclaimResult:
    """What one `reclaim_idle` pass did, as lists of entry ids."""

    handled: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    dead_lettered: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    """Ids trimmed or deleted from the stream; Redis 7.0+ drops them from the PEL."""


# --8<-- [start:redis-reclaim]
def reclaim_idle(
    client: redis.Redis,
    stream: str,
    group: str,
    claimer: str,
    handler: Handler,
    *,
    min_idle_ms: int,
    max_deliveries: int,
    dead_letter: str,
    count: int = 1,
) -> ReclaimResult:
    """Claim entries idle longer than `min_idle_ms` and process them once more.

    Walks the whole PEL with XAUTOCLAIM's cursor. Each claim increments the
    entry's delivery counter; an entry delivered more than `max_deliveries`
    times goes to the `dead_letter` stream instead of to the handler.
    `min_idle_ms` must exceed the time from a claim to the last XACK of its
    batch: `count` times your slowest handler. Otherwise a claimed entry that
    waits for its turn goes idle again, and another reclaimer takes it too.
    """
    result = ReclaimResult()
    cursor = "0-0"
    while True:
        cursor, claimed, deleted = client.xautoclaim(
            stream, group, claimer, min_idle_ms, cursor, count=count
        )
        result.deleted.extend(deleted)
        deliveries = _deliveries(client, stream, group, [i for i, _ in claimed])
        for entry_id, fields in claimed:
            times = deliveries.get(entry_id, 0)
            if times > max_deliveries:
                _dead_letter(
                    client, stream, group, dead_letter, entry_id, fields, times
                )
                result.dead_lettered.append(entry_id)
            elif _handle(client, stream, group, handler, entry_id, fields):
                result.handled.append(entry_id)
            else:
                result.failed.append(entry_id)
        if cursor == "0-0":  # the scan has reached the end of the PEL
            return result


# --8<-- [end:redis-reclaim]


# --8<-- [start:redis-dead-letter]
def _deliveries(
    client: redis.Redis, stream: str, group: str, ids: list[str]
) -> dict[str, int]:
    """Each entry's delivery counter, from XPENDING's extended form."""
    pipe = client.pipeline(transaction=False)
    for entry_id in ids:
        pipe.xpending_range(stream, group, entry_id, entry_id, 1)
    rows: list[list[dict[str, Any]]] = pipe.execute()
    return {
        str(row["message_id"]): int(row["times_delivered"])
        for found in rows
        for row in found
    }


def _dead_letter(
    client: redis.Redis,
    stream: str,
    group: str,
    dead_letter: str,
    entry_id: str,
    fields: Fields,
    deliveries: int,
) -> None:
    """Copy the entry to the dead-letter stream and ack it, in one MULTI/EXEC."""
    record: dict[FieldT, EncodableT] = {k: v for k, v in fields.items()}
    record["dead-letter-source"] = f"{stream} {entry_id}"
    record["dead-letter-deliveries"] = str(deliveries)
    with client.pipeline(transaction=True) as pipe:
        pipe.xadd(dead_letter, record)
        pipe.xack(stream, group, entry_id)
        pipe.execute()
    log.warning("entry %s dead-lettered to %s", entry_id, dead_letter)


# --8<-- [end:redis-dead-letter]


# --8<-- [start:redis-reclaimer]
def run_reclaimer(
    client: redis.Redis,
    stream: str,
    group: str,
    claimer: str,
    handler: Handler,
    stop: threading.Event,
    *,
    min_idle_ms: int,
    max_deliveries: int,
    dead_letter: str,
    interval_s: float = 1.0,
) -> None:
    """Call `reclaim_idle` every `interval_s` seconds until `stop` is set.

    Run one per consumer group (or several: a claim resets the entry's idle
    time, so two reclaimers do not both get the same entry at once).
    """
    while not stop.is_set():
        result = reclaim_idle(
            client,
            stream,
            group,
            claimer,
            handler,
            min_idle_ms=min_idle_ms,
            max_deliveries=max_deliveries,
            dead_letter=dead_letter,
        )
        if result.handled or result.failed or result.dead_lettered:
            log.info("reclaimed %s", result)
        stop.wait(interval_s)


# --8<-- [end:redis-reclaimer]


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
