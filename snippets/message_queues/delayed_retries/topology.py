"""Delayed retries on RabbitMQ: wait queues whose TTL dead-letters back to work."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pika

__all__ = [
    "RETRIES",
    "Channel",
    "Handler",
    "PermanentError",
    "RetryTopology",
    "death_count",
    "declare_fixed_delay",
    "declare_retry_topology",
    "handle_with_rejects",
    "handle_with_retries",
]

log = logging.getLogger(__name__)

Handler = Callable[[bytes], None]
Channel = Any  # pika.adapters.blocking_connection.BlockingChannel (untyped)


class PermanentError(Exception):
    """Raised by a handler when retrying cannot help: park the message at once."""


# --8<-- [start:declare]
@dataclass(frozen=True)
class RetryTopology:
    """A work queue, one wait queue per delay (shortest first), a parking lot."""

    work: str
    tiers: tuple[tuple[float, str], ...]  # (delay in seconds, wait queue)
    parking_lot: str


def declare_retry_topology(
    channel: Channel, topology: RetryTopology, *, quorum: bool = False
) -> None:
    """Declare the queues. A wait queue has no consumer: its messages expire
    after the queue's ``x-message-ttl`` and are dead-lettered, through the
    default exchange, to the work queue."""
    kind = {"x-queue-type": "quorum"} if quorum else {}
    channel.queue_declare(topology.work, durable=True, arguments=kind)
    channel.queue_declare(topology.parking_lot, durable=True, arguments=kind)
    for delay, wait in topology.tiers:
        arguments = {
            **kind,
            "x-message-ttl": round(delay * 1000),  # one TTL for the whole queue
            "x-dead-letter-exchange": "",  # the default exchange...
            "x-dead-letter-routing-key": topology.work,  # ...routes by queue name
        }
        if quorum:  # confirmed transfer to the work queue (RabbitMQ 3.10+)
            arguments["x-dead-letter-strategy"] = "at-least-once"
            arguments["x-overflow"] = "reject-publish"
        channel.queue_declare(wait, durable=True, arguments=arguments)


# --8<-- [end:declare]


# --8<-- [start:retry]
RETRIES = "retries"  # header: delayed retries so far (not x-death, see page)


def handle_with_retries(
    channel: Channel,
    method: Any,
    properties: Any,
    body: bytes,
    handle: Handler,
    topology: RetryTopology,
    *,
    max_retries: int,
) -> str:
    """Ack on success. On failure publish a copy to the next wait queue, or to
    the parking lot once ``max_retries`` are used up, then ack the original.

    ``channel`` must be in confirm mode: the copy is on the broker before the
    original is acked, so a crash in between duplicates, never loses.
    """
    headers = dict(properties.headers or {})
    retries = int(headers.get(RETRIES, 0))
    try:
        handle(body)
    except Exception as error:
        headers["error"] = f"{type(error).__name__}: {error}"[:200]
        if isinstance(error, PermanentError) or retries >= max_retries:
            target, result = topology.parking_lot, "parked"
        else:
            delay, target = topology.tiers[min(retries, len(topology.tiers) - 1)]
            headers[RETRIES] = retries + 1
            result = f"retry in {delay:g} s"
        log.warning("%s (%d retries so far)", result, retries, exc_info=True)
        copy = pika.BasicProperties(  # the tier's TTL decides, not an expiration
            **{**vars(properties), "headers": headers, "expiration": None}
        )
        channel.basic_publish("", target, body, copy, mandatory=True)
        channel.basic_ack(method.delivery_tag)  # only after the confirm
        return result
    channel.basic_ack(method.delivery_tag)
    return "processed"


# --8<-- [end:retry]


# --8<-- [start:x-death]
def death_count(headers: Mapping[str, Any] | None, queue: str, reason: str) -> int:
    """How often the broker dead-lettered this message from ``queue`` for
    ``reason``: the ``count`` of the one ``x-death`` entry for that pair."""
    for death in (headers or {}).get("x-death", []):
        if death.get("queue") == queue and death.get("reason") == reason:
            return int(death["count"])
    return 0


# --8<-- [end:x-death]


# --8<-- [start:fixed]
def declare_fixed_delay(
    channel: Channel, *, work: str, wait: str, parking_lot: str, delay: float
) -> None:
    """One delay, no client republish: a rejected message is dead-lettered to
    ``wait`` by the broker, and expires back to ``work`` after ``delay``."""
    to_wait = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": wait}
    to_work = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": work}
    channel.queue_declare(work, durable=True, arguments=to_wait)
    ttl = {"x-message-ttl": round(delay * 1000)}
    channel.queue_declare(wait, durable=True, arguments={**to_work, **ttl})
    channel.queue_declare(parking_lot, durable=True)


def handle_with_rejects(
    channel: Channel,
    method: Any,
    properties: Any,
    body: bytes,
    handle: Handler,
    *,
    work: str,
    parking_lot: str,
    max_retries: int,
) -> str:
    """Retry through the broker's dead-lettering; cap with ``x-death``."""
    retries = death_count(properties.headers, work, "rejected")
    try:
        handle(body)
    except Exception as error:
        if isinstance(error, PermanentError) or retries >= max_retries:
            headers = {**(properties.headers or {}), "error": str(error)[:200]}
            copy = pika.BasicProperties(**{**vars(properties), "headers": headers})
            channel.basic_publish("", parking_lot, body, copy, mandatory=True)
            channel.basic_ack(method.delivery_tag)
            return "parked"
        channel.basic_reject(method.delivery_tag, requeue=False)  # to the wait queue
        return "retry"
    channel.basic_ack(method.delivery_tag)
    return "processed"


# --8<-- [end:fixed]
