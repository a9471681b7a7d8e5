"""The consumer loop: commit first, then ack; reject failures, nack on stop."""

from __future__ import annotations

import logging
import threading
from typing import Any

from snippets.message_queues.idempotent_consumer.inbox import Conn, Credit, Handler

__all__ = ["consume"]

log = logging.getLogger(__name__)


# --8<-- [start:consume]
def consume(
    channel: Any,
    queue: str,
    conn: Conn,
    handler: Handler,
    consumer: str,
    stop: threading.Event,
    *,
    idle_timeout: float = 1.0,
) -> None:
    """Consume ``queue`` until ``stop`` is set: commit first, then ack.

    ``channel`` is a pika ``BlockingChannel`` with a prefetch set; ``conn`` is in
    autocommit mode so that each ``transaction()`` block is one transaction.
    ``consumer`` is half of the inbox key. The loop checks ``stop`` at least every
    ``idle_timeout`` seconds.

    Raises:
        Exception: Whatever the handler or the database raised, after the
            transaction rolled back and the message was requeued.
    """
    deliveries = channel.consume(queue, inactivity_timeout=idle_timeout)
    try:
        for method, properties, body in deliveries:
            if method is None:  # idle_timeout passed without a delivery
                if stop.is_set():
                    break
                continue
            if stop.is_set():  # not processed, not failed: nack does not count
                channel.basic_nack(method.delivery_tag, requeue=True)
                break
            _handle(channel, method, properties, body, conn, handler, consumer)
    finally:
        channel.cancel()  # deliveries still buffered go back to the queue


# --8<-- [end:consume]


# --8<-- [start:settle]
def _handle(
    channel: Any,
    method: Any,
    properties: Any,
    body: bytes,
    conn: Conn,
    handler: Handler,
    consumer: str,
) -> None:
    try:
        credit = Credit.from_amqp(properties.message_id, body, method.redelivered)
    except ValueError:
        log.exception("rejecting malformed message")
        channel.basic_reject(method.delivery_tag, requeue=False)  # to the DLX
        return
    try:
        with conn.transaction():
            handler(conn, consumer, credit)
    except Exception:  # a failure: reject counts toward a quorum queue's limit
        channel.basic_reject(method.delivery_tag, requeue=True)
        raise
    channel.basic_ack(method.delivery_tag)  # only after the commit


# --8<-- [end:settle]
