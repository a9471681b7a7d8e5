"""Crash recovery on Redis Streams: ack after the work, reclaim what the dead left.

Redis Streams keeps an entry that a consumer read but never acknowledged in the
consumer group's Pending Entries List (PEL) for ever; nobody reading new entries
(`>`) sees it again. `consume` acks only after the handler returns and, on
start, drains its own pending entries first; `reclaim_idle` moves entries idle
longer than a threshold to a live consumer with `XAUTOCLAIM` and dead-letters
those delivered too often.

The functions need a client made with ``decode_responses=True`` and a
``socket_timeout`` longer than the blocking read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import redis
from redis.typing import EncodableT, FieldT

__all__ = [
    "Fields",
    "Handler",
    "ReclaimResult",
    "consume",
    "ensure_group",
    "reclaim_idle",
    "run_reclaimer",
]

log = logging.getLogger(__name__)

Fields = dict[str, str]
"""The field-value pairs of one stream entry."""

Handler = Callable[[str, Fields], None]
"""Processes one entry, given its id and fields; raising leaves it pending."""


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
