"""The transactional-outbox scenarios the page shows, run by its demo and tests.

A writer killed between its commit and its publish (and the outbox instead),
a relay killed after the broker confirmed, two relays claiming the same rows,
the order of one aggregate's events across relays, and an event nobody can
route; each runs against real PostgreSQL and RabbitMQ servers and returns
what it observed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import psycopg

from snippets.message_queues.transactional_outbox import (
    CLAIM_IN_ORDER,
    Event,
    Publisher,
    RabbitPublisher,
    place_order,
    relay_once,
)
from snippets.support.message_queues_outbox_rig import (
    CLAIMS,
    WAIT,
    Gate,
    Message,
    counts,
    drain,
    kill_at,
    relay_all,
    scalar,
    setup,
    topology,
    write_events,
)
from snippets.support.services import Postgres, RabbitMQ

__all__ = [
    "CrashResult",
    "crash",
    "many_runs",
    "order_within_an_aggregate",
    "race",
    "relay_crash",
    "unroutable",
]


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
