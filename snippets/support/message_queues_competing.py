"""Harness for the competing-consumers demos and tests.

A worker process that is killed while it holds messages, a second consumer that
drains what the broker redelivers, and queue counters.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pika

from snippets.message_queues.competing_consumers import (
    Delivery,
    connect,
    declare_queue,
    publish,
    ready_count,
    run_consumer,
)
from snippets.support.processes import read_line
from snippets.support.services import RabbitMQ

__all__ = [
    "BODIES",
    "CHILD",
    "TOTAL",
    "consumer_count",
    "crash_worker",
    "drain",
    "read_line",
    "ready",
    "wait_until",
    "worker",
]

ROOT = Path(__file__).resolve().parents[2]
CHILD = "snippets.support.message_queues_competing_child"
TOTAL = 5
BODIES = [f"m{i}" for i in range(TOTAL)]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` every 10 ms; raise `TimeoutError` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def consumer_count(connection: pika.BlockingConnection, queue: str) -> int:
    with connection.channel() as channel:
        method = channel.queue_declare(queue, passive=True).method
        return int(method.consumer_count)


def ready(connection: pika.BlockingConnection, queue: str) -> int:
    with connection.channel() as channel:
        return ready_count(channel, queue)


@contextmanager
def worker(url: str, queue: str, *extra: str) -> Iterator[subprocess.Popen[str]]:
    """A worker process running the snippet's command line; always reaped."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            CHILD,
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


def drain(url: str, queue: str, expected: int) -> list[Delivery]:
    """Run a second consumer until it has handled ``expected`` messages."""
    got: list[Delivery] = []
    stop = threading.Event()

    def handle(delivery: Delivery) -> None:
        got.append(delivery)
        if len(got) >= expected:
            stop.set()

    if expected:
        deadline = threading.Timer(10, stop.set)  # bounded, even if none arrive
        deadline.start()
        with connect(url) as conn:
            run_consumer(conn, queue, handle, prefetch=1, stop=stop, idle_timeout=0.05)
        deadline.cancel()
    return got


def crash_worker(
    rabbitmq: RabbitMQ, conn: pika.BlockingConnection, *flags: str, in_flight: int
) -> tuple[str, list[Delivery]]:
    """Kill a worker that holds a message, then let another consumer drain."""
    queue = rabbitmq.name("jobs")
    with conn.channel() as channel:
        declare_queue(channel, queue)
    publish(conn, queue, (body.encode() for body in BODIES))
    with worker(rabbitmq.url, queue, *flags) as proc:
        first = read_line(proc, timeout=15)
        # The broker has sent the worker its window: `in_flight` messages.
        wait_until(
            lambda: ready(conn, queue) == TOTAL - in_flight,
            10,
            "the worker's deliveries",
        )
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    wait_until(
        lambda: consumer_count(conn, queue) == 0,
        10,
        "the broker to notice the dead consumer",
    )
    recovered = drain(rabbitmq.url, queue, expected=ready(conn, queue))
    return first, recovered
