"""The rig the transactional-outbox scenarios run on.

A RabbitMQ topology and a way to read every message a queue holds, the order
and outbox counts in PostgreSQL, a relay run until nothing is left, the writer
or relay process (``message_queues_outbox_child``) that is killed at a chosen
point, and a publisher that holds its first publish at a barrier.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

import pika
import psycopg

from snippets.message_queues.transactional_outbox import (
    CLAIM_IN_ORDER,
    CLAIM_SKIP_LOCKED,
    CLAIM_UNLOCKED,
    Conn,
    Event,
    Publisher,
    add_to_outbox,
    create_schema,
    relay_once,
)
from snippets.support.services import Postgres, RabbitMQ

__all__ = [
    "CHILD",
    "CLAIMS",
    "CRASHES",
    "WAIT",
    "Gate",
    "Message",
    "counts",
    "drain",
    "kill_at",
    "late_events",
    "relay_all",
    "scalar",
    "setup",
    "topology",
    "versions",
    "write_events",
]

ROOT = Path(__file__).resolve().parents[2]
CHILD = "snippets.support.message_queues_outbox_child"
WAIT = 15.0  # seconds; every wait here is bounded by it
CLAIMS = {
    "unlocked": CLAIM_UNLOCKED,
    "skip-locked": CLAIM_SKIP_LOCKED,
    "in-order": CLAIM_IN_ORDER,
}
CRASHES = {
    "commit-then-publish": "after the commit, before the publish",
    "publish-then-commit": "after the publish, before the commit",
    "outbox-after-commit": "after the commit (outbox), then a relay runs",
    "outbox-before-commit": "before the commit (outbox), then a relay runs",
}

Message = tuple[str, str, dict[str, Any]]
"""(message_id, aggregate id, payload)"""


def versions(postgres: Postgres, rabbitmq: RabbitMQ) -> str:
    """The server versions, for a test's ``-s`` output."""
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    amqp = pika.BlockingConnection(pika.URLParameters(rabbitmq.url))
    version = amqp._impl.server_properties.get("version")
    amqp.close()
    return f"PostgreSQL {row[0] if row else '?'}, RabbitMQ {version}"


def setup(postgres: Postgres) -> None:
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        create_schema(conn)


def topology(
    rabbitmq: RabbitMQ, *, bind: bool = True, pattern: str = "#"
) -> tuple[str, str]:
    """An exchange for the events and (if ``bind``) one queue bound by ``pattern``."""
    exchange, queue = rabbitmq.name("events"), rabbitmq.name("orders")
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq.url))
    try:
        channel = connection.channel()
        channel.exchange_declare(exchange, "topic", durable=True)
        channel.queue_declare(queue, durable=True)
        if bind:
            channel.queue_bind(queue, exchange, pattern)
    finally:
        connection.close()
    return exchange, queue


def drain(rabbitmq: RabbitMQ, queue: str) -> list[Message]:
    """Every message in ``queue``, in queue order."""
    messages: list[Message] = []
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq.url))
    try:
        channel = connection.channel()
        while True:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return messages
            aggregate = properties.headers["aggregate_id"]
            messages.append((properties.message_id, aggregate, json.loads(body)))
    finally:
        connection.close()


def scalar(conn: Conn, query: str) -> int:
    row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])


def counts(postgres: Postgres) -> tuple[int, int]:
    """(orders, outbox rows still pending)."""
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        orders = scalar(conn, "SELECT count(*) FROM orders")
        pending = scalar(conn, "SELECT count(*) FROM outbox WHERE published_at IS NULL")
    return orders, pending


def relay_all(postgres: Postgres, publisher: Publisher, claim: str) -> int:
    """One relay, until nothing is left to claim."""
    total = 0
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        while count := relay_once(conn, publisher, batch_size=10, claim=claim):
            total += count
    return total


def late_events(messages: list[Message]) -> int:
    """Events that arrived after a later event of the same aggregate."""
    highest: dict[str, int] = defaultdict(int)
    late = 0
    for _, aggregate, payload in messages:
        seq = int(payload["seq"])
        late += seq < highest[aggregate]
        highest[aggregate] = max(highest[aggregate], seq)
    return late


def write_events(postgres: Postgres, aggregates: list[str], per_aggregate: int) -> None:
    """Events seq 1..n for each aggregate, interleaved across aggregates."""
    with psycopg.connect(postgres.dsn, autocommit=True) as conn, conn.transaction():
        for seq in range(1, per_aggregate + 1):
            for aggregate in aggregates:
                add_to_outbox(conn, aggregate, "test.event", {"seq": seq})


def kill_at(mode: str, postgres: Postgres, rabbitmq: RabbitMQ, exchange: str) -> None:
    """Run the child until its crash point, then SIGKILL it."""
    args = [sys.executable, "-m", CHILD, mode, postgres.dsn, rabbitmq.url, exchange]
    child = subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], WAIT)
        assert ready, "the child never reached its crash point"
        assert child.stdout.readline().strip() == "paused"
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=WAIT) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=WAIT)
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()


class Gate:
    """Wraps a publisher; the first publish of each relay waits at a barrier."""

    def __init__(self, inner: Publisher, barrier: threading.Barrier) -> None:
        self.inner, self.barrier, self.waited = inner, barrier, False

    def publish(self, event: Event) -> None:
        if not self.waited:
            self.waited = True
            self.barrier.wait(timeout=WAIT)
        self.inner.publish(event)
