"""Competing consumers against a real RabbitMQ: crashes, prefetch, long work.

A worker process is killed with SIGKILL between receiving a message and
acknowledging it. With automatic acknowledgements every message it had been
sent is lost; with manual acknowledgements they are redelivered to another
consumer. A stuck consumer with unlimited prefetch hoards the queue; with a
bounded prefetch the others get the work.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pika
import pika.exceptions
import pytest

from snippets.message_queues import competing_consumers as cc
from snippets.message_queues.competing_consumers.demo import demo_prefetch
from snippets.support.message_queues_competing import (
    BODIES,
    TOTAL,
    consumer_count,
    crash_worker,
    ready,
    wait_until,
)
from tests.conftest import RabbitMQ
from tools.errors import ErrorRecorder


def server_version(connection: pika.BlockingConnection) -> str:
    """The broker's version as it announced it when the connection opened."""
    properties = connection._impl.server_properties or {}
    version = properties.get("version", b"?")
    return version.decode() if isinstance(version, bytes) else str(version)


@pytest.fixture
def connection(rabbitmq: RabbitMQ) -> Iterator[pika.BlockingConnection]:
    with cc.connect(rabbitmq.url) as conn:
        print(f"RabbitMQ {server_version(conn)}, pika {pika.__version__}")
        yield conn


def test_auto_ack_loses_every_message_the_dead_worker_was_sent(
    rabbitmq: RabbitMQ,
    connection: pika.BlockingConnection,
) -> None:
    # Prefetch does not apply to auto-ack: the broker sends the whole queue.
    first, recovered = crash_worker(rabbitmq, connection, "--auto-ack", in_flight=TOTAL)
    assert first == "received m0 redelivered=False"
    assert recovered == []


def test_manual_ack_redelivers_to_another_consumer(
    rabbitmq: RabbitMQ,
    connection: pika.BlockingConnection,
) -> None:
    first, recovered = crash_worker(
        rabbitmq, connection, "--prefetch", "1", in_flight=1
    )
    assert first == "received m0 redelivered=False"
    assert sorted(d.body.decode() for d in recovered) == BODIES
    assert [d.body for d in recovered if d.redelivered] == [b"m0"]


def test_unlimited_prefetch_lets_a_stuck_consumer_hoard_the_queue(
    rabbitmq: RabbitMQ,
    connection: pika.BlockingConnection,
) -> None:
    counts = demo_prefetch(rabbitmq.url, rabbitmq.name("jobs"), prefetch=0)
    assert counts == {"busy": 20, "free": 0}


def test_bounded_prefetch_spreads_the_work(
    rabbitmq: RabbitMQ,
    connection: pika.BlockingConnection,
) -> None:
    for prefetch in (1, 5):
        counts = demo_prefetch(
            rabbitmq.url, rabbitmq.name(f"jobs{prefetch}"), prefetch=prefetch
        )
        assert counts == {"busy": prefetch, "free": 20 - prefetch}


SLOW_SECONDS = 4.0  # four times the 1 s heartbeat timeout


def test_blocking_the_connection_thread_drops_the_connection(
    rabbitmq: RabbitMQ,
    connection: pika.BlockingConnection,
    error_record: ErrorRecorder,
) -> None:
    """Without the worker thread: the broker closes the silent connection."""
    queue = rabbitmq.name("slow")
    with connection.channel() as channel:
        cc.declare_queue(channel, queue)
    cc.publish(connection, queue, [b"slow"])
    with cc.connect(rabbitmq.url, heartbeat=1) as conn:
        channel = conn.channel()
        method, _, _ = next(channel.consume(queue, inactivity_timeout=5))
        assert method is not None
        threading.Event().wait(SLOW_SECONDS)  # the handler, on pika's thread
        with pytest.raises(pika.exceptions.StreamLostError) as lost:
            channel.basic_ack(method.delivery_tag)
            conn.process_data_events(time_limit=0.5)
    print(f"basic_ack after the silence: {lost.value!r}")
    wait_until(lambda: ready(connection, queue) == 1, 10, "the requeue")
    error_record(
        lost.value,
        id="stream-lost",
        component="pika",
        version=pika.__version__,
    )


def test_an_ack_on_another_channel_closes_that_channel(
    rabbitmq: RabbitMQ,
    connection: pika.BlockingConnection,
    error_record: ErrorRecorder,
) -> None:
    """Delivery tags belong to their channel: acking one elsewhere is an error."""
    queue = rabbitmq.name("tags")
    with connection.channel() as channel:
        cc.declare_queue(channel, queue)
    cc.publish(connection, queue, [b"m0"])
    receiving = connection.channel()
    method, _, _ = next(receiving.consume(queue, inactivity_timeout=5))
    assert method is not None
    other = connection.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as closed:
        other.basic_ack(method.delivery_tag)
        other.basic_qos(prefetch_count=1)  # a round trip: the close arrives
    assert closed.value.reply_code == 406
    assert closed.value.reply_text.startswith("PRECONDITION_FAILED - unknown delivery")
    receiving.close()  # the unacknowledged message goes back to the queue
    wait_until(lambda: ready(connection, queue) == 1, 10, "the requeue")
    error_record(
        closed.value,
        id="unknown-delivery-tag",
        component="RabbitMQ",
        version=server_version(connection),
        section="pattern",
    )


def test_long_work_on_a_worker_thread_keeps_the_connection(
    rabbitmq: RabbitMQ, connection: pika.BlockingConnection
) -> None:
    queue = rabbitmq.name("slow")
    with connection.channel() as channel:
        cc.declare_queue(channel, queue)
    cc.publish(connection, queue, [b"slow"])
    stop = threading.Event()
    handled: list[cc.Delivery] = []

    def slow(delivery: cc.Delivery) -> None:
        threading.Event().wait(SLOW_SECONDS)
        handled.append(delivery)
        stop.set()

    with cc.connect(rabbitmq.url, heartbeat=1) as conn:
        done = cc.run_consumer(conn, queue, slow, prefetch=1, stop=stop)
        assert conn.is_open
    assert done == 1
    assert [d.redelivered for d in handled] == [False]
    wait_until(lambda: consumer_count(connection, queue) == 0, 10, "the close")
    assert ready(connection, queue) == 0  # acked: nothing was requeued
