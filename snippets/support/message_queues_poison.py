"""Harness for the poison-messages demos and tests.

The demos' handler and bookkeeping, and consumer processes that the poison
message kills one after another.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika

from snippets.message_queues.poison_messages import (
    Channel,
    PermanentError,
    connect,
    declare_quorum_with_dead_letter,
    depth,
)
from snippets.support.services import RabbitMQ

__all__ = [
    "CHILD",
    "GOOD",
    "Outcome",
    "consumers",
    "crash_counted",
    "crash_limit",
    "example_handler",
    "publish_all",
    "read_dead_letters",
    "run_until_clean_exit",
    "wait_until",
]

ROOT = Path(__file__).resolve().parents[2]
CHILD = "snippets.support.message_queues_poison_child"


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


def publish_all(channel: Channel, queue: str, bodies: list[bytes]) -> None:
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


def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    """Poll ``condition`` every 10 ms; raise `TimeoutError` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met in {timeout} s")
        time.sleep(0.01)


def consumers(url: str, queue: str) -> int:
    with connect(url) as connection:
        method = connection.channel().queue_declare(queue, passive=True).method
        return int(method.consumer_count)


def run_until_clean_exit(
    url: str, queue: str, dead_letter_queue: str, mode: str, max_runs: int
) -> tuple[int, list[str]]:
    """Start consumers one after another; count the ones the poison kills.

    Returns how many were killed and what the consumers processed, in order.
    """
    killed, processed = 0, []
    for _ in range(max_runs):
        # The broker has seen the previous consumer die and requeued its message.
        wait_until(lambda: consumers(url, queue) == 0, 10)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                CHILD,
                url,
                queue,
                dead_letter_queue,
                mode,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        processed += done.stdout.split()
        if done.returncode != -signal.SIGKILL:
            assert done.returncode == 0, done.stderr
            break
        killed += 1
    return killed, processed


def crash_limit(rabbitmq: RabbitMQ) -> tuple[int, list[str], list[str]]:
    """A quorum queue with a delivery limit of 3; the poison message kills.

    Returns (consumers killed, what the next ones processed, dead letters).
    """
    queue, dlx, dlq = (rabbitmq.name(n) for n in ("jobs", "jobs.dlx", "jobs.dlq"))
    with connect(rabbitmq.url) as connection:
        channel = connection.channel()
        declare_quorum_with_dead_letter(
            channel,
            queue,
            dead_letter_exchange=dlx,
            dead_letter_queue=dlq,
            delivery_limit=3,
        )
        channel.confirm_delivery()
        for body in [b"poison", *GOOD]:
            channel.basic_publish("", queue, body, mandatory=True)
        killed, processed = run_until_clean_exit(
            rabbitmq.url, queue, dlq, "limit", max_runs=8
        )
        wait_until(lambda: depth(channel, dlq) > 0, 10)  # async transfer
        return killed, processed, read_dead_letters(channel, dlq)


@dataclass(frozen=True)
class CrashCounted:
    killed: int
    processed: list[str]
    first: bytes
    redelivered: bool
    headers: dict[str, Any]
    left: int
    dead: int


def crash_counted(rabbitmq: RabbitMQ) -> CrashCounted:
    """Counted retries on a classic queue; the poison message kills six times."""
    queue, dlq = rabbitmq.name("jobs"), rabbitmq.name("jobs.dlq")
    with connect(rabbitmq.url) as connection:
        channel = connection.channel()
        for name in (queue, dlq):
            channel.queue_declare(name, durable=True)
        channel.confirm_delivery()
        for body in [b"poison", *GOOD]:
            channel.basic_publish("", queue, body, mandatory=True)
        killed, processed = run_until_clean_exit(
            rabbitmq.url, queue, dlq, "counted", max_runs=6
        )
        wait_until(lambda: consumers(rabbitmq.url, queue) == 0, 10)
        left, dead = depth(channel, queue), depth(channel, dlq)
        method, properties, body = channel.basic_get(queue, auto_ack=False)
        channel.basic_nack(method.delivery_tag, requeue=True)
    return CrashCounted(
        killed,
        processed,
        body,
        bool(method.redelivered),
        dict(properties.headers or {}),
        left,
        dead,
    )
