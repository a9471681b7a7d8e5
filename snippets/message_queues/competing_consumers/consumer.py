"""Connect, publish, and consume with manual acks after the work."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pika
import pika.exceptions

__all__ = [
    "DEFAULT_URL",
    "Delivery",
    "Handler",
    "connect",
    "declare_queue",
    "publish",
    "ready_count",
    "run_consumer",
    "work_while_serving_connection",
]

log = logging.getLogger(__name__)

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


@dataclass(frozen=True)
class Delivery:
    """One message, as a handler sees it."""

    body: bytes
    redelivered: bool
    """The broker delivered this message before, to this or another consumer.

    Use it for metrics and logs only: a message can also be a duplicate without
    the flag (a publisher retry), so correctness comes from an idempotent handler.
    """


Handler = Callable[[Delivery], None]


# --8<-- [start:connect]
def connect(
    url: str = DEFAULT_URL, *, heartbeat: int = 30, timeout: float = 10.0
) -> pika.BlockingConnection:
    """Open a blocking connection whose every wait is bounded.

    Args:
        url: AMQP URL, for example ``amqp://guest:guest@127.0.0.1:5672/%2F``.
        heartbeat: heartbeat timeout in seconds. After two missed heartbeats
            (sent every ``heartbeat / 2`` s) the broker closes the connection,
            so a handler must not block the connection's thread (see
            `work_while_serving_connection`).
        timeout: limit in seconds for connecting, for each protocol step, and
            for a publish blocked by a broker resource alarm.

    Returns:
        An open connection; close it with ``with`` or ``close()``.
    """
    params = pika.URLParameters(url)
    params.heartbeat = heartbeat
    params.socket_timeout = timeout
    params.stack_timeout = timeout
    params.blocked_connection_timeout = timeout
    params.connection_attempts = 3
    params.retry_delay = 1.0
    return pika.BlockingConnection(params)


# --8<-- [end:connect]


# --8<-- [start:publish]
def declare_queue(
    channel: pika.adapters.blocking_connection.BlockingChannel, queue: str
) -> None:
    """Declare the durable queue that producers and all consumers share."""
    channel.queue_declare(queue, durable=True)


def publish(
    connection: pika.BlockingConnection, queue: str, bodies: Iterable[bytes]
) -> int:
    """Publish persistent messages and return once the broker confirmed them.

    Returns:
        How many messages were published.
    """
    count = 0
    with connection.channel() as channel:
        channel.confirm_delivery()
        for body in bodies:
            channel.basic_publish(
                "",
                queue,
                body,
                pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
                mandatory=True,
            )
            count += 1
    return count


# --8<-- [end:publish]


# --8<-- [start:consumer]
def run_consumer(
    connection: pika.BlockingConnection,
    queue: str,
    handle: Handler,
    *,
    prefetch: int,
    stop: threading.Event,
    idle_timeout: float = 0.5,
) -> int:
    """Consume ``queue`` until ``stop`` is set; ack each message after its work.

    Args:
        connection: used by this thread only (pika is not thread-safe).
        queue: the shared work queue.
        handle: does the work, on a worker thread.
        prefetch: most unacknowledged messages held at once; 0 is unlimited.
        stop: stop taking messages; the one in hand is finished and acked.
        idle_timeout: seconds between looks at ``stop`` while idle.

    Returns:
        How many messages were handled and acknowledged.

    Raises:
        Exception: what ``handle`` raised, after the channel is closed so that
            the broker requeues that message and any prefetched ones.
    """
    channel = connection.channel()
    channel.basic_qos(prefetch_count=prefetch)
    done = 0
    with ThreadPoolExecutor(1, thread_name_prefix="handler") as pool:
        try:
            for method, _props, body in channel.consume(
                queue, auto_ack=False, inactivity_timeout=idle_timeout
            ):
                if stop.is_set():
                    break  # an unhandled delivery goes back to the queue below
                if method is None:
                    continue  # nothing arrived within idle_timeout
                delivery = Delivery(body, bool(method.redelivered))
                work_while_serving_connection(connection, pool, handle, delivery)
                channel.basic_ack(method.delivery_tag)  # after the work, same channel
                done += 1
        finally:
            if channel.is_open:
                channel.close()  # requeues every delivery not acked yet
    return done


# --8<-- [end:consumer]


# --8<-- [start:heartbeats]
def work_while_serving_connection(
    connection: pika.BlockingConnection,
    pool: ThreadPoolExecutor,
    handle: Handler,
    delivery: Delivery,
) -> None:
    """Run ``handle`` on a worker thread while this thread serves the connection.

    pika sends heartbeats only while the connection's thread is inside pika. A
    handler that kept that thread busy for longer than the heartbeat timeout
    would get the connection closed by the broker, and its message redelivered
    although it was processed.

    Raises:
        Exception: whatever ``handle`` raised, re-raised on this thread.
    """
    future = pool.submit(handle, delivery)
    future.add_done_callback(lambda _: _wake(connection))
    while not future.done():
        connection.process_data_events(time_limit=None)  # heartbeats, I/O
    future.result()


def _wake(connection: pika.BlockingConnection) -> None:
    """Make a blocked ``process_data_events`` return (callable from any thread)."""
    with contextlib.suppress(pika.exceptions.ConnectionWrongStateError):
        connection.add_callback_threadsafe(lambda: None)


# --8<-- [end:heartbeats]


def ready_count(
    channel: pika.adapters.blocking_connection.BlockingChannel, queue: str
) -> int:
    """Messages ready for delivery (not counting unacknowledged ones)."""
    return int(channel.queue_declare(queue, passive=True).method.message_count)
