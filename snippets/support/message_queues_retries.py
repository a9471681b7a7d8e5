"""Harness for the delayed-retries demos and tests.

Names for a retry topology, the demos' handlers and bookkeeping, and the
consumer process that is killed between the confirmed copy and the ack.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika

from snippets.message_queues.delayed_retries import (
    RETRIES,
    Channel,
    PermanentError,
    RetryTopology,
    declare_retry_topology,
    handle_with_retries,
)
from snippets.message_queues.poison_messages import connect, deliveries, depth
from snippets.support.services import RabbitMQ

__all__ = [
    "CHILD",
    "DELAYS",
    "CrashResult",
    "Delivery",
    "FlakyHandler",
    "Outcome",
    "confirmed_channel",
    "consumers",
    "crash_between_copy_and_ack",
    "publish_all",
    "read_all",
    "short",
    "topology_for",
    "wait_until",
]

ROOT = Path(__file__).resolve().parents[2]
CHILD = "snippets.support.message_queues_retries_child"
# 1 s, 5 s and 30 s in production; a tenth (and less) here, so tests stay quick.
DELAYS = (0.2, 0.5, 1.0)


def topology_for(
    rabbitmq: RabbitMQ, base: str, delays: tuple[float, ...] = DELAYS
) -> RetryTopology:
    """A topology whose queue names the service fixture deletes afterwards."""
    return RetryTopology(
        work=rabbitmq.name(base),
        tiers=tuple(
            (delay, rabbitmq.name(f"{base}.wait-{round(delay * 1000)}ms"))
            for delay in delays
        ),
        parking_lot=rabbitmq.name(f"{base}.parking-lot"),
    )


def short(name: str) -> str:
    """A queue name without the per-run prefix, for deterministic output."""
    return name.split(".", 1)[1] if name.startswith("t_") else name


class FlakyHandler:
    """``poison`` always fails, ``malformed`` is permanent, ``flaky-N`` fails
    N times and then succeeds, anything else succeeds."""

    def __init__(self) -> None:
        self.calls: Counter[bytes] = Counter()

    def __call__(self, body: bytes) -> None:
        self.calls[body] += 1
        if body == b"poison":
            raise RuntimeError("downstream rejects this payload")
        if body == b"malformed":
            raise PermanentError("not valid JSON")
        if body.startswith(b"flaky-") and self.calls[body] <= int(body[6:]):
            raise ConnectionError("downstream timed out")


@dataclass
class Delivery:
    body: str
    result: str
    redelivered: bool
    retries: int
    at: float  # seconds since the demo started


@dataclass
class Outcome:
    deliveries: list[Delivery] = field(default_factory=list)
    parked: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def of(self, body: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.body == body]

    def settled(self) -> int:
        return sum(d.result in {"processed", "parked"} for d in self.deliveries)


def publish_all(channel: Channel, queue: str, bodies: list[bytes]) -> None:
    for body in bodies:
        properties = pika.BasicProperties(delivery_mode=2, message_id=body.decode())
        channel.basic_publish("", queue, body, properties, mandatory=True)


def read_all(channel: Channel, queue: str) -> list[tuple[str, dict[str, Any]]]:
    """Take every message from ``queue``: (body, headers), sorted by body."""
    found: list[tuple[str, dict[str, Any]]] = []
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return sorted(found, key=lambda item: item[0])
        found.append((body.decode(), dict(properties.headers or {})))


def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    """Poll ``condition`` every 10 ms; raise `TimeoutError` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met in {timeout} s")
        time.sleep(0.01)


def consumers(channel: Channel, queue: str) -> int:
    return int(channel.queue_declare(queue, passive=True).method.consumer_count)


@contextmanager
def confirmed_channel(url: str) -> Iterator[Channel]:
    with connect(url) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        yield channel


@dataclass(frozen=True)
class CrashResult:
    exit_code: int
    seen: list[Delivery]
    wait_depth: int
    parked: int


def crash_between_copy_and_ack(
    rabbitmq: RabbitMQ, timeout: float = 10.0
) -> CrashResult:
    """A consumer process fails ``order-7``, publishes the retry copy (confirmed)
    and is killed before its ack; a second consumer takes over."""
    topology = topology_for(rabbitmq, "orders")
    with confirmed_channel(rabbitmq.url) as channel:
        declare_retry_topology(channel, topology)
        publish_all(channel, topology.work, [b"order-7"])
        child = subprocess.run(
            [sys.executable, "-m", CHILD, rabbitmq.url, topology.work,
             topology.tiers[0][1], topology.parking_lot],
            cwd=ROOT, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert child.returncode == -signal.SIGKILL, child.stderr
        wait_until(lambda: consumers(channel, topology.work) == 0, timeout)
        start, seen = time.monotonic(), list[Delivery]()
        for method, props, body in deliveries(
            channel, topology.work, prefetch=1, timeout=timeout,
            until=lambda: len(seen) == 2,
        ):  # fmt: skip
            result = handle_with_retries(
                channel, method, props, body, lambda _: None, topology, max_retries=3
            )
            retries = int((props.headers or {}).get(RETRIES, 0))
            at = time.monotonic() - start
            seen.append(
                Delivery(body.decode(), result, bool(method.redelivered), retries, at)
            )
        return CrashResult(
            child.returncode,
            seen,
            depth(channel, topology.tiers[0][1]),
            depth(channel, topology.parking_lot),
        )
