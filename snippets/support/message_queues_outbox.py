"""Harness for the transactional-outbox demos and tests.

A RabbitMQ topology, a way to read every message a queue holds, the writer or
relay process that is killed at a chosen point, publishers that hold their
first publish, and the scenarios the page shows, each returning what it
observed.
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
from dataclasses import dataclass
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
    RabbitPublisher,
    add_to_outbox,
    create_schema,
    place_order,
    relay_once,
)
from snippets.support.services import Postgres, RabbitMQ

__all__ = [
    "CHILD",
    "CLAIMS",
    "CRASHES",
    "WAIT",
    "CrashResult",
    "Gate",
    "Message",
    "counts",
    "crash",
    "drain",
    "kill_at",
    "late_events",
    "many_runs",
    "order_within_an_aggregate",
    "race",
    "relay_all",
    "relay_crash",
    "scalar",
    "setup",
    "topology",
    "unroutable",
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


# --------------------------------------------------------------------------- #
# The scenarios
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class CrashResult:
    orders: int
    delivered: int
    pending: int
    relayed: int


def crash(postgres: Postgres, rabbitmq: RabbitMQ, mode: str) -> CrashResult:
    """Kill the writer at ``mode`` (see ``CRASHES``), then run a relay."""
    setup(postgres)
    exchange, queue = topology(rabbitmq)
    kill_at(mode, postgres, rabbitmq, exchange)
    with RabbitPublisher(rabbitmq.url, exchange) as publisher:  # a relay restarts
        relayed = relay_all(postgres, publisher, CLAIM_IN_ORDER)
    orders, pending = counts(postgres)
    return CrashResult(orders, len(drain(rabbitmq, queue)), pending, relayed)


def relay_crash(postgres: Postgres, rabbitmq: RabbitMQ) -> tuple[int, int, list[str]]:
    """Kill a relay after the confirm: (pending then, relayed after, message ids)."""
    setup(postgres)
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        place_order(conn, "alice", 4200)
    exchange, queue = topology(rabbitmq)
    kill_at("relay-after-publish", postgres, rabbitmq, exchange)
    _, pending_after_crash = counts(postgres)
    with RabbitPublisher(rabbitmq.url, exchange) as publisher:
        relayed = relay_all(postgres, publisher, CLAIM_IN_ORDER)
    ids = [message_id for message_id, _, _ in drain(rabbitmq, queue)]
    return pending_after_crash, relayed, ids


def _run_relays(target: Any, count: int) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    if errors:
        raise errors[0]


def race(postgres: Postgres, rabbitmq: RabbitMQ, claim: str) -> list[str]:
    """20 events, two relays with batches of 10 that both claim before publishing.

    Returns the message ids the queue received, leftovers included.
    """
    setup(postgres)
    write_events(postgres, [f"order-{n}" for n in range(20)], 1)
    exchange, queue = topology(rabbitmq)
    barrier = threading.Barrier(2)

    def relay() -> None:
        try:
            with (
                RabbitPublisher(rabbitmq.url, exchange) as publisher,
                psycopg.connect(postgres.dsn, autocommit=True) as conn,
            ):
                relay_once(
                    conn, Gate(publisher, barrier), batch_size=10, claim=CLAIMS[claim]
                )
        except BaseException:
            barrier.abort()
            raise

    _run_relays(relay, 2)
    with RabbitPublisher(rabbitmq.url, exchange) as publisher:  # the leftovers
        relay_all(postgres, publisher, CLAIMS[claim])
    return [message_id for message_id, _, _ in drain(rabbitmq, queue)]


def many_runs(
    postgres: Postgres,
    rabbitmq: RabbitMQ,
    *,
    runs: int = 10,
    aggregates: int = 20,
    per_aggregate: int = 5,
) -> tuple[list[Message], list[int]]:
    """Two relays drain ``aggregates * per_aggregate`` events per run.

    Each relay's first publish waits until the other has claimed a batch too.
    Returns the messages and the rows left pending after each run.
    """
    setup(postgres)
    exchange, queue = topology(rabbitmq)
    left: list[int] = []
    for run in range(runs):
        names = [f"run{run}-order-{n}" for n in range(aggregates)]
        write_events(postgres, names, per_aggregate)
        both_claimed = threading.Barrier(2)

        def relay(barrier: threading.Barrier = both_claimed) -> None:
            try:
                with RabbitPublisher(rabbitmq.url, exchange) as publisher:
                    relay_all(postgres, Gate(publisher, barrier), CLAIM_IN_ORDER)
            except BaseException:
                barrier.abort()
                raise

        _run_relays(relay, 2)
        left.append(counts(postgres)[1])
    return drain(rabbitmq, queue), left


def order_within_an_aggregate(
    postgres: Postgres, rabbitmq: RabbitMQ, claim: str
) -> tuple[int, list[Message]]:
    """Relay A claims two of four events and stalls; relay B runs meanwhile.

    Returns what B published while A held its batch, and the queue's messages.
    """
    setup(postgres)
    write_events(postgres, ["order-1"], 4)
    exchange, queue = topology(rabbitmq)
    holding, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    class Stall:
        def __init__(self, inner: Publisher) -> None:
            self.inner = inner

        def publish(self, event: Event) -> None:
            if not holding.is_set():
                holding.set()
                assert release.wait(WAIT)
            self.inner.publish(event)

    def relay_a() -> None:
        try:
            with (
                RabbitPublisher(rabbitmq.url, exchange) as publisher,
                psycopg.connect(postgres.dsn, autocommit=True) as conn,
            ):
                relay_once(conn, Stall(publisher), batch_size=2, claim=CLAIMS[claim])
        except BaseException as error:
            errors.append(error)

    first = threading.Thread(target=relay_a)
    first.start()
    try:
        assert holding.wait(WAIT)
        with (
            RabbitPublisher(rabbitmq.url, exchange) as publisher,
            psycopg.connect(postgres.dsn, autocommit=True) as conn,
        ):
            by_b = relay_once(conn, publisher, batch_size=2, claim=CLAIMS[claim])
    finally:
        release.set()
        first.join(WAIT)
    if errors:
        raise errors[0]
    with RabbitPublisher(rabbitmq.url, exchange) as publisher:
        relay_all(postgres, publisher, CLAIMS[claim])
    return by_b, drain(rabbitmq, queue)


def unroutable(
    postgres: Postgres, rabbitmq: RabbitMQ, mandatory: bool
) -> tuple[int, int, int]:
    """One event to an exchange with no queue: (published, attempts, pending)."""
    setup(postgres)
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        place_order(conn, "alice", 4200)
    exchange, _ = topology(rabbitmq, bind=False)
    with (
        RabbitPublisher(rabbitmq.url, exchange, mandatory=mandatory) as publisher,
        psycopg.connect(postgres.dsn, autocommit=True) as conn,
    ):
        published = relay_once(conn, publisher)
        attempts = scalar(conn, "SELECT attempts FROM outbox")
    return published, attempts, counts(postgres)[1]
