"""RabbitMQ: one queue per key range with a single active consumer."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pika

from snippets.message_queues.ordered_processing.lanes import Event

__all__ = ["consume_events", "declare_ordered_queue"]

T = TypeVar("T")


# --8<-- [start:rabbitmq]
def declare_ordered_queue(channel: Any, name: str, *, single_active: bool) -> None:
    """Declare a durable classic queue, optionally with one active consumer.

    With `x-single-active-consumer` the broker delivers to one registered
    consumer and fails over to another when that one is cancelled or dies,
    so the order of the queue is the order of processing.
    """
    arguments = {"x-single-active-consumer": True} if single_active else {}
    channel.queue_declare(name, durable=True, arguments=arguments)


def consume_events(
    url: str, queue_name: str, handle: Callable[[Event], None], stop: threading.Event
) -> None:
    """Apply events one at a time and ack each only after it is applied.

    `prefetch_count=1` keeps one unacked event per consumer. If `handle`
    raises, the connection closes and the broker requeues the event for the
    next consumer. Returns once `stop` is set.
    """
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=1)
        for method, _, body in channel.consume(queue_name, inactivity_timeout=0.05):
            if stop.is_set():
                break
            if method is not None:
                handle(Event(**json.loads(body)))
                channel.basic_ack(method.delivery_tag)
        channel.cancel()
    finally:
        connection.close()


# --8<-- [end:rabbitmq]
