"""Competing consumers against a real RabbitMQ: crashes, prefetch, long work.

A worker process is killed with SIGKILL between receiving a message and
acknowledging it. With automatic acknowledgements every message it had been
sent is lost; with manual acknowledgements they are redelivered to another
consumer. A stuck consumer with unlimited prefetch hoards the queue; with a
bounded prefetch the others get the work.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pika
import pika.exceptions
import pytest

from snippets.message_queues import competing_consumers as cc
from tests.conftest import OutputCheck, RabbitMQ
from tests.processes import read_line

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = "message_queues/competing_consumers"
TOTAL = 5
BODIES = [f"m{i}" for i in range(TOTAL)]


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


def consumer_count(connection: pika.BlockingConnection, queue: str) -> int:
    with connection.channel() as channel:
        method = channel.queue_declare(queue, passive=True).method
        return int(method.consumer_count)


def ready(connection: pika.BlockingConnection, queue: str) -> int:
    with connection.channel() as channel:
        return cc.ready_count(channel, queue)


@contextmanager
def worker(url: str, queue: str, *extra: str) -> Iterator[subprocess.Popen[str]]:
    """A worker process running the snippet's command line; always reaped."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "snippets.message_queues.competing_consumers",
            "--url",
            url,
            "--queue",
            queue,
            "--work-seconds",
            "60",
            *extra,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def drain(url: str, queue: str, expected: int) -> list[cc.Delivery]:
    """Run a second consumer until it has handled ``expected`` messages."""
    got: list[cc.Delivery] = []
    stop = threading.Event()

    def handle(delivery: cc.Delivery) -> None:
        got.append(delivery)
        if len(got) >= expected:
            stop.set()

    if expected:
        deadline = threading.Timer(10, stop.set)  # bounded, even if none arrive
        deadline.start()
        with cc.connect(url) as conn:
            cc.run_consumer(
                conn, queue, handle, prefetch=1, stop=stop, idle_timeout=0.05
            )
        deadline.cancel()
    return got


def crash_worker(
    rabbitmq: RabbitMQ, conn: pika.BlockingConnection, *flags: str, in_flight: int
) -> tuple[str, list[cc.Delivery]]:
    """Kill a worker that holds a message, then let another consumer drain."""
    queue = rabbitmq.name("jobs")
    with conn.channel() as channel:
        cc.declare_queue(channel, queue)
    cc.publish(conn, queue, (body.encode() for body in BODIES))
    with worker(rabbitmq.url, queue, *flags) as proc:
        first = read_line(proc, timeout=15)
        # The broker has sent the worker its window: `in_flight` messages.
        cc.wait_until(
            lambda: ready(conn, queue) == TOTAL - in_flight,
            10,
            "the worker's deliveries",
        )
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    cc.wait_until(
        lambda: consumer_count(conn, queue) == 0,
        10,
        "the broker to notice the dead consumer",
    )
    recovered = drain(rabbitmq.url, queue, expected=ready(conn, queue))
    return first, recovered


def report(label: str, first: str, recovered: list[cc.Delivery]) -> str:
    got = sorted(
        d.body.decode() + (" (redelivered)" if d.redelivered else "") for d in recovered
    )
    lost = sorted(set(BODIES) - {d.body.decode() for d in recovered})
    return "\n".join(
        [
            f"published: {' '.join(BODIES)}",
            f'worker ({label}) printed "{first}", then got SIGKILL',
            f"another consumer received: {' '.join(got) or 'none'}",
            f"lost: {' '.join(lost) or 'none'}",
        ]
    )


def test_auto_ack_loses_every_message_the_dead_worker_was_sent(
    rabbitmq: RabbitMQ,
    connection: pika.BlockingConnection,
    expected_output: OutputCheck,
) -> None:
    # Prefetch does not apply to auto-ack: the broker sends the whole queue.
    first, recovered = crash_worker(rabbitmq, connection, "--auto-ack", in_flight=TOTAL)
    assert first == "received m0 redelivered=False"
    assert recovered == []
    expected_output(f"{OUTPUT}.crash_auto_ack", report("auto-ack", first, recovered))


def test_manual_ack_redelivers_to_another_consumer(
    rabbitmq: RabbitMQ,
    connection: pika.BlockingConnection,
    expected_output: OutputCheck,
) -> None:
    first, recovered = crash_worker(
        rabbitmq, connection, "--prefetch", "1", in_flight=1
    )
    assert first == "received m0 redelivered=False"
    assert sorted(d.body.decode() for d in recovered) == BODIES
    assert [d.body for d in recovered if d.redelivered] == [b"m0"]
    expected_output(
        f"{OUTPUT}.crash_manual_ack", report("manual ack, prefetch 1", first, recovered)
    )


def prefetch_report(prefetch: int, counts: dict[str, int]) -> str:
    label = "0 (unlimited)" if prefetch == 0 else str(prefetch)
    return (
        f"prefetch={label}: busy consumer took {counts['busy']}, "
        f"free consumer took {counts['free']}"
    )


def test_unlimited_prefetch_lets_a_stuck_consumer_hoard_the_queue(
    rabbitmq: RabbitMQ,
    connection: pika.BlockingConnection,
    expected_output: OutputCheck,
) -> None:
    counts = cc.demo_prefetch(rabbitmq.url, rabbitmq.name("jobs"), prefetch=0)
    assert counts == {"busy": 20, "free": 0}
    expected_output(f"{OUTPUT}.prefetch_unlimited", prefetch_report(0, counts))


def test_bounded_prefetch_spreads_the_work(
    rabbitmq: RabbitMQ,
    connection: pika.BlockingConnection,
    expected_output: OutputCheck,
) -> None:
    lines = []
    for prefetch in (1, 5):
        counts = cc.demo_prefetch(
            rabbitmq.url, rabbitmq.name(f"jobs{prefetch}"), prefetch=prefetch
        )
        assert counts == {"busy": prefetch, "free": 20 - prefetch}
        lines.append(prefetch_report(prefetch, counts))
    expected_output(f"{OUTPUT}.prefetch_bounded", "\n".join(lines))


SLOW_SECONDS = 4.0  # four times the 1 s heartbeat timeout


def test_blocking_the_connection_thread_drops_the_connection(
    rabbitmq: RabbitMQ, connection: pika.BlockingConnection
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
    cc.wait_until(lambda: ready(connection, queue) == 1, 10, "the requeue")


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
    cc.wait_until(lambda: consumer_count(connection, queue) == 0, 10, "the close")
    assert ready(connection, queue) == 0  # acked: nothing was requeued
