"""Bounded redeliveries: the broker's delivery limit, or attempts in a header."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pika

__all__ = [
    "ATTEMPTS",
    "Channel",
    "Handler",
    "PermanentError",
    "connect",
    "declare_quorum_with_dead_letter",
    "deliveries",
    "depth",
    "handle_with_counted_retries",
    "handle_with_limit",
]

log = logging.getLogger(__name__)

Handler = Callable[[bytes], None]
Channel = Any  # pika.adapters.blocking_connection.BlockingChannel (untyped)


class PermanentError(Exception):
    """Raised by a handler when retrying cannot help: dead-letter at once."""


# --8<-- [start:loop]
def deliveries(
    channel: Channel,
    queue: str,
    *,
    prefetch: int,
    until: Callable[[], bool],
    timeout: float | None = None,
    idle_timeout: float = 0.05,
) -> Iterator[tuple[Any, Any, bytes]]:
    """Yield ``(method, properties, body)`` until ``until()`` returns true.

    Args:
        channel: the channel to consume on; acks must use the same channel.
        queue: the queue to consume.
        prefetch: most unacknowledged messages at once.
        until: checked after each delivery and while idle, for example
            ``stop_event.is_set``.
        timeout: raise `TimeoutError` after this many seconds (``None``: never).
        idle_timeout: seconds between checks of ``until`` while idle.
    """
    channel.basic_qos(prefetch_count=prefetch)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        for method, properties, body in channel.consume(
            queue, inactivity_timeout=idle_timeout
        ):
            if method is not None:
                yield method, properties, body  # the caller acks or rejects it
            if until():
                return
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{queue}: condition not met in {timeout} s")
    finally:
        channel.cancel()  # requeues deliveries received but not yet handled


# --8<-- [end:loop]


# --8<-- [start:declare]
def declare_quorum_with_dead_letter(
    channel: Channel,
    queue: str,
    *,
    dead_letter_exchange: str,
    dead_letter_queue: str,
    delivery_limit: int,
) -> None:
    """Declare a quorum queue that dead-letters after ``delivery_limit`` returns.

    A message is delivered at most ``delivery_limit + 1`` times. Dead-lettering
    is at-least-once (RabbitMQ 3.10+), which requires ``reject-publish``
    overflow. In production set the limit and the exchange with a policy, so
    they can change without redeclaring the queue.
    """
    quorum = {"x-queue-type": "quorum"}
    channel.exchange_declare(dead_letter_exchange, "fanout", durable=True)
    channel.queue_declare(dead_letter_queue, durable=True, arguments=quorum)
    channel.queue_bind(dead_letter_queue, dead_letter_exchange)
    channel.queue_declare(
        queue,
        durable=True,
        arguments={
            **quorum,
            "x-delivery-limit": delivery_limit,
            "x-dead-letter-exchange": dead_letter_exchange,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        },
    )


# --8<-- [end:declare]


# --8<-- [start:limited]
def handle_with_limit(
    channel: Channel, method: Any, properties: Any, body: bytes, handle: Handler
) -> str:
    """Ack on success; on failure let the broker count and dead-letter.

    ``basic.reject`` rather than ``basic.nack``: since RabbitMQ 4.3 a nack
    no longer counts toward the delivery limit, a reject still does.
    """
    failures = (properties.headers or {}).get("x-delivery-count", 0)
    try:
        handle(body)
    except PermanentError:
        log.warning("permanent failure; dead-lettering now", exc_info=True)
        channel.basic_reject(method.delivery_tag, requeue=False)
        return "dead-lettered"
    except Exception:
        log.warning(
            "failure after %d earlier ones; requeueing", failures, exc_info=True
        )
        channel.basic_reject(method.delivery_tag, requeue=True)
        return "requeued"
    channel.basic_ack(method.delivery_tag)
    return "processed"


# --8<-- [end:limited]


# --8<-- [start:counted]
ATTEMPTS = "attempts"  # header: how many times the handler has failed


def handle_with_counted_retries(
    channel: Channel,
    method: Any,
    properties: Any,
    body: bytes,
    handle: Handler,
    *,
    retry_queue: str,
    dead_letter_queue: str,
    max_attempts: int,
) -> str:
    """Retry by republishing with an attempt counter; dead-letter at the limit.

    ``channel`` must be in confirm mode: the copy is confirmed by the broker
    before the original is acked, so a crash in between duplicates the
    message instead of losing it.
    """
    headers = dict(properties.headers or {})
    attempt = int(headers.get(ATTEMPTS, 0)) + 1
    try:
        handle(body)
    except Exception as error:
        final = isinstance(error, PermanentError) or attempt >= max_attempts
        headers[ATTEMPTS] = attempt
        headers["error"] = f"{type(error).__name__}: {error}"[:200]
        target = dead_letter_queue if final else retry_queue
        log.warning("attempt %d failed; to %s", attempt, target, exc_info=True)
        copy = pika.BasicProperties(  # every property, headers updated
            **{**vars(properties), "headers": headers, "delivery_mode": 2}
        )
        channel.basic_publish("", target, body, copy, mandatory=True)
        channel.basic_ack(method.delivery_tag)
        return "dead-lettered" if final else "requeued"
    channel.basic_ack(method.delivery_tag)
    return "processed"


# --8<-- [end:counted]


def connect(url: str) -> pika.BlockingConnection:
    """A connection with bounded waits (see the competing-consumers page)."""
    params = pika.URLParameters(url)
    params.socket_timeout = params.stack_timeout = 10.0
    params.blocked_connection_timeout = 10.0
    return pika.BlockingConnection(params)


def depth(channel: Channel, queue: str) -> int:
    """Messages ready in ``queue``."""
    return int(channel.queue_declare(queue, passive=True).method.message_count)
