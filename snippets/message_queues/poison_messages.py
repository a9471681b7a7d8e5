"""Poison messages: bound the redeliveries, then move the message aside.

A poison message is one whose handler fails every time (a schema the code does
not understand, a bug, data that breaks an invariant). Requeued on every
failure it comes back forever: it blocks the queue behind it or burns CPU and
log space in a loop. The cure is a bound on the attempts plus a dead-letter
queue where the message waits for a person or a replay tool.

Two implementations:

* RabbitMQ quorum queues count deliveries themselves: with ``x-delivery-limit``
  and a dead-letter exchange the broker moves the message aside (3.10+).
* Broker-neutral: count attempts in a message header, republish on failure and
  publish to a dead-letter queue after the last attempt.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pika

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


# --8<-- [start:naive]
def handle_or_requeue(
    channel: Channel, method: Any, body: bytes, handle: Handler
) -> str:
    """The unbounded version: every failure goes straight back to the queue."""
    try:
        handle(body)
    except Exception:
        log.exception("handler failed; requeueing")
        channel.basic_nack(method.delivery_tag, requeue=True)
        return "requeued"
    channel.basic_ack(method.delivery_tag)
    return "processed"


# --8<-- [end:naive]


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


def example_handler(body: bytes) -> None:
    """The demos' handler: ``poison`` always fails, ``malformed`` cannot parse."""
    if body == b"poison":
        raise RuntimeError("downstream rejects this payload")
    if body == b"malformed":
        raise PermanentError("not valid JSON")


@dataclass
class Outcome:
    """What a demo observed."""

    deliveries: Counter[str] = field(default_factory=Counter)
    order: list[str] = field(default_factory=list)
    processed: list[str] = field(default_factory=list)
    dead_lettered: list[str] = field(default_factory=list)
    still_queued: int = 0

    def record(self, body: bytes, result: str) -> None:
        self.deliveries[body.decode()] += 1
        self.order.append(body.decode())
        if result == "processed":
            self.processed.append(body.decode())


def _publish(channel: Channel, queue: str, bodies: list[bytes]) -> None:
    for body in bodies:
        channel.basic_publish(
            "", queue, body, pika.BasicProperties(delivery_mode=2), mandatory=True
        )


def read_dead_letters(channel: Channel, queue: str) -> list[str]:
    """Take every message from ``queue``: ``body (reason)``, sorted."""
    found: list[str] = []
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return sorted(found)
        headers = properties.headers or {}
        reason = headers.get("x-first-death-reason") or headers.get("error", "?")
        found.append(f"{body.decode()} ({reason})")


GOOD = [b"good-%d" % i for i in range(5)]


# --8<-- [start:demo-unbounded]
def demo_unbounded(
    url: str,
    queue: str,
    *,
    quorum: bool,
    max_deliveries: int = 50,
    timeout: float = 10.0,
) -> Outcome:
    """Requeue on every failure until the poison message came back N times.

    The poison message is published first, then five good ones; prefetch is 1.
    """
    outcome = Outcome()
    with connect(url) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        arguments = {"x-queue-type": "quorum"} if quorum else {}
        channel.queue_declare(queue, durable=True, arguments=arguments)
        _publish(channel, queue, [b"poison", *GOOD])
        for method, _props, body in deliveries(
            channel,
            queue,
            prefetch=1,
            timeout=timeout,
            until=lambda: outcome.deliveries["poison"] >= max_deliveries,
        ):
            outcome.record(
                body, handle_or_requeue(channel, method, body, example_handler)
            )
        left = 1 + len(GOOD) - len(outcome.processed)
        wait_until(lambda: depth(channel, queue) == left, timeout)
        outcome.still_queued = depth(channel, queue)
    return outcome


# --8<-- [end:demo-unbounded]


def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    """Poll ``condition`` every 10 ms; raise `TimeoutError` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met in {timeout} s")
        time.sleep(0.01)


# --8<-- [start:demo-limit]
def demo_delivery_limit(
    url: str,
    queue: str,
    *,
    dead_letter_exchange: str,
    dead_letter_queue: str,
    delivery_limit: int = 3,
    timeout: float = 10.0,
    nack: bool = False,
) -> Outcome:
    """A quorum queue with a delivery limit: poison, malformed and good messages.

    With ``nack=True`` the consumer requeues with ``basic.nack`` instead of
    ``basic.reject`` (which counts toward the limit on 3.x, not since 4.3).
    """
    outcome = Outcome()
    bodies = [b"poison", b"malformed", *GOOD]
    with connect(url) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        declare_quorum_with_dead_letter(
            channel,
            queue,
            dead_letter_exchange=dead_letter_exchange,
            dead_letter_queue=dead_letter_queue,
            delivery_limit=delivery_limit,
        )
        _publish(channel, queue, bodies)

        def finished() -> bool:
            settled = len(outcome.processed) + depth(channel, dead_letter_queue)
            return settled == len(bodies)

        for method, props, body in deliveries(
            channel, queue, prefetch=1, until=finished, timeout=timeout
        ):
            if nack:
                result = handle_or_requeue(channel, method, body, example_handler)
            else:
                result = handle_with_limit(
                    channel, method, props, body, example_handler
                )
            outcome.record(body, result)
        outcome.dead_lettered = read_dead_letters(channel, dead_letter_queue)
    return outcome


# --8<-- [end:demo-limit]


# --8<-- [start:demo-counted]
def demo_counted_retries(
    url: str,
    queue: str,
    *,
    dead_letter_queue: str,
    max_attempts: int = 3,
    timeout: float = 10.0,
) -> Outcome:
    """Counted retries on a classic queue: no broker feature needed."""
    outcome = Outcome()
    bodies = [b"poison", b"malformed", *GOOD]
    with connect(url) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        for name in (queue, dead_letter_queue):
            channel.queue_declare(name, durable=True)
        _publish(channel, queue, bodies)

        def finished() -> bool:
            settled = len(outcome.processed) + depth(channel, dead_letter_queue)
            return settled == len(bodies)

        for method, props, body in deliveries(
            channel, queue, prefetch=1, until=finished, timeout=timeout
        ):
            result = handle_with_counted_retries(
                channel,
                method,
                props,
                body,
                example_handler,
                retry_queue=queue,
                dead_letter_queue=dead_letter_queue,
                max_attempts=max_attempts,
            )
            outcome.record(body, result)
        outcome.dead_lettered = read_dead_letters(channel, dead_letter_queue)
    return outcome


# --8<-- [end:demo-counted]
