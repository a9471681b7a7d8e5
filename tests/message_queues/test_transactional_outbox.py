"""Transactional outbox against PostgreSQL and RabbitMQ (publisher confirms).

The crash tests run the writer or the relay in a real process and stop it with
SIGKILL at a chosen point. The relay races hold the first publish of each relay at
a Barrier, so both relays have claimed before either publishes.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pika
import psycopg
import pytest

from snippets.message_queues.transactional_outbox import (
    CLAIM_IN_ORDER,
    CLAIM_SKIP_LOCKED,
    CLAIM_UNLOCKED,
    BrokerUnavailable,
    Conn,
    Event,
    Publisher,
    RabbitPublisher,
    add_to_outbox,
    create_schema,
    parked_events,
    place_order,
    relay_once,
    release_parked,
    run_relay,
)
from tests.conftest import OutputCheck, Postgres, RabbitMQ

ROOT = Path(__file__).resolve().parents[2]
WAIT = 15.0  # seconds; every wait in this module is bounded by it
CLAIMS = {
    "unlocked": CLAIM_UNLOCKED,
    "skip-locked": CLAIM_SKIP_LOCKED,
    "in-order": CLAIM_IN_ORDER,
}


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #


def log_versions(conn: Conn, rabbitmq: RabbitMQ) -> None:
    """Print the server versions (visible with ``pytest -s``)."""
    row = conn.execute("SHOW server_version").fetchone()
    assert row is not None
    amqp = pika.BlockingConnection(pika.URLParameters(rabbitmq.url))
    version = amqp._impl.server_properties.get("version")
    amqp.close()
    print(f"PostgreSQL {row[0]}, RabbitMQ {version}")


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


def drain(rabbitmq: RabbitMQ, queue: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every message in ``queue``, in queue order: (message_id, aggregate, payload)."""
    messages: list[tuple[str, str, dict[str, Any]]] = []
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


def late_events(messages: list[tuple[str, str, dict[str, Any]]]) -> int:
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


# The process that gets killed. It pauses at the crash point until SIGKILL.
CHILD = r"""
import sys, threading
import psycopg
from snippets.message_queues import transactional_outbox as ob

mode, dsn, url, exchange = sys.argv[1:5]

def crash_point():
    print("paused", flush=True)
    threading.Event().wait()  # until SIGKILL

class PauseBefore:  # the process dies before the publish
    def publish(self, event):
        crash_point()

class PauseAfter:  # the broker confirmed the publish, then the process dies
    def __init__(self, inner):
        self.inner = inner
    def publish(self, event):
        self.inner.publish(event)
        crash_point()

real = ob.RabbitPublisher(url, exchange)
with psycopg.connect(dsn, autocommit=True) as conn:
    if mode == "commit-then-publish":
        ob.place_order_then_publish(conn, PauseBefore(), "alice", 4200)
    elif mode == "publish-then-commit":
        ob.publish_then_commit(conn, PauseAfter(real), "alice", 4200)
    elif mode == "outbox-after-commit":
        ob.place_order(conn, "alice", 4200)
        crash_point()
    elif mode == "outbox-before-commit":
        with conn.transaction():
            ob.place_order(conn, "alice", 4200)
            crash_point()
    elif mode == "relay-after-publish":
        ob.relay_once(conn, PauseAfter(real))
"""


def kill_at(mode: str, postgres: Postgres, rabbitmq: RabbitMQ, exchange: str) -> None:
    """Run the child until its crash point, then SIGKILL it."""
    args = [sys.executable, "-c", CHILD, mode, postgres.dsn, rabbitmq.url, exchange]
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
# The dual write, and the outbox, under SIGKILL
# --------------------------------------------------------------------------- #


CRASHES = {
    "commit-then-publish": "after the commit, before the publish",
    "publish-then-commit": "after the publish, before the commit",
    "outbox-after-commit": "after the commit (outbox), then a relay runs",
    "outbox-before-commit": "before the commit (outbox), then a relay runs",
}


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("commit-then-publish", (1, 0)),  # the order exists, its event is lost
        ("publish-then-commit", (0, 1)),  # a ghost event for an order that is not
        ("outbox-after-commit", (1, 1)),
        ("outbox-before-commit", (0, 0)),
    ],
)
def test_crash_between_the_database_and_the_broker(
    postgres: Postgres,
    rabbitmq: RabbitMQ,
    mode: str,
    expected: tuple[int, int],
    expected_output: OutputCheck,
) -> None:
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        create_schema(conn)
        log_versions(conn, rabbitmq)
    exchange, queue = topology(rabbitmq)
    kill_at(mode, postgres, rabbitmq, exchange)
    with RabbitPublisher(rabbitmq.url, exchange) as publisher:  # a relay restarts
        relayed = relay_all(postgres, publisher, CLAIM_IN_ORDER)
    orders, pending = counts(postgres)
    delivered = len(drain(rabbitmq, queue))
    assert (orders, delivered) == expected
    assert pending == 0
    assert relayed == (delivered if mode.startswith("outbox") else 0)
    report = "\n".join(
        [
            f"{mode}: SIGKILL {CRASHES[mode]}",
            f"orders: {orders}, events delivered: {delivered}",
        ]
    )
    expected_output(f"message_queues/transactional_outbox.crash-{mode}", report)


def test_relay_killed_after_publish_publishes_again(
    postgres: Postgres, rabbitmq: RabbitMQ, expected_output: OutputCheck
) -> None:
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        create_schema(conn)
        log_versions(conn, rabbitmq)
        place_order(conn, "alice", 4200)
    exchange, queue = topology(rabbitmq)
    kill_at("relay-after-publish", postgres, rabbitmq, exchange)
    _, pending_after_crash = counts(postgres)
    with RabbitPublisher(rabbitmq.url, exchange) as publisher:
        relayed = relay_all(postgres, publisher, CLAIM_IN_ORDER)
    messages = drain(rabbitmq, queue)
    ids = [message_id for message_id, _, _ in messages]
    assert pending_after_crash == 1  # the mark rolled back with the process
    assert relayed == 1
    assert len(ids) == 2 and len(set(ids)) == 1  # the same event, twice
    assert counts(postgres)[1] == 0
    report = "\n".join(
        [
            "relay: SIGKILL after the broker's confirm, before its commit",
            f"pending after the crash: {pending_after_crash}",
            f"deliveries: {len(ids)}, distinct message_id: {len(set(ids))}",
        ]
    )
    expected_output("message_queues/transactional_outbox.relay-crash", report)


# --------------------------------------------------------------------------- #
# Two relays at once
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("claim", "duplicates"),
    [("unlocked", 10), ("skip-locked", 0), ("in-order", 0)],
)
def test_two_relays_claim_at_the_same_moment(
    postgres: Postgres,
    rabbitmq: RabbitMQ,
    claim: str,
    duplicates: int,
    expected_output: OutputCheck,
) -> None:
    """20 events, batches of 10: both relays claim before either publishes."""
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        create_schema(conn)
        log_versions(conn, rabbitmq)
    write_events(postgres, [f"order-{n}" for n in range(20)], 1)
    exchange, queue = topology(rabbitmq)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def relay() -> None:
        try:
            with (
                RabbitPublisher(rabbitmq.url, exchange) as publisher,
                psycopg.connect(postgres.dsn, autocommit=True) as conn,
            ):
                gate = Gate(publisher, barrier)
                relay_once(conn, gate, batch_size=10, claim=CLAIMS[claim])
        except BaseException as error:
            barrier.abort()
            errors.append(error)

    threads = [threading.Thread(target=relay) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert errors == []
    with RabbitPublisher(rabbitmq.url, exchange) as publisher:  # the leftovers
        relay_all(postgres, publisher, CLAIMS[claim])
    ids = [message_id for message_id, _, _ in drain(rabbitmq, queue)]
    assert len(set(ids)) == 20  # none left behind
    assert len(ids) - len(set(ids)) == duplicates
    assert counts(postgres)[1] == 0
    report = (
        f"claim {claim}: published {len(ids)}, distinct {len(set(ids))},"
        f" duplicates {len(ids) - len(set(ids))}"
    )
    expected_output(f"message_queues/transactional_outbox.race-{claim}", report)


def test_two_relays_over_many_runs(
    postgres: Postgres, rabbitmq: RabbitMQ, expected_output: OutputCheck
) -> None:
    """Two relays drain 100 events per run, 10 runs.

    Each relay's first publish waits until the other has claimed a batch too, so
    every run has both relays holding rows at once; after that they run free.
    """
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        create_schema(conn)
        log_versions(conn, rabbitmq)
    exchange, queue = topology(rabbitmq)
    runs, aggregates, per_aggregate = 10, 20, 5
    errors: list[BaseException] = []

    def relay(both_claimed: threading.Barrier) -> None:
        try:
            with RabbitPublisher(rabbitmq.url, exchange) as publisher:
                relay_all(postgres, Gate(publisher, both_claimed), CLAIM_IN_ORDER)
        except BaseException as error:
            both_claimed.abort()
            errors.append(error)

    for run in range(runs):
        names = [f"run{run}-order-{n}" for n in range(aggregates)]
        write_events(postgres, names, per_aggregate)
        both_claimed = threading.Barrier(2)  # after that the relays run free
        threads = [
            threading.Thread(target=relay, args=(both_claimed,)) for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        assert errors == []
        assert counts(postgres)[1] == 0, f"run {run} left events behind"
    messages = drain(rabbitmq, queue)
    ids = [message_id for message_id, _, _ in messages]
    events = runs * aggregates * per_aggregate
    assert len(ids) == events
    assert len(set(ids)) == events
    assert late_events(messages) == 0
    report = "\n".join(
        [
            f"runs: {runs}, relays at once: 2, events per run: {events // runs}",
            f"published: {len(ids)}, distinct: {len(set(ids))},"
            f" left pending: {counts(postgres)[1]}",
            f"events behind a later event of their aggregate: {late_events(messages)}",
        ]
    )
    expected_output("message_queues/transactional_outbox.many-runs", report)


# --------------------------------------------------------------------------- #
# Order within an aggregate
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(("claim", "late"), [("skip-locked", 2), ("in-order", 0)])
def test_order_within_an_aggregate(
    postgres: Postgres,
    rabbitmq: RabbitMQ,
    claim: str,
    late: int,
    expected_output: OutputCheck,
) -> None:
    """Relay A claims and stalls before publishing; relay B runs meanwhile."""
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        create_schema(conn)
        log_versions(conn, rabbitmq)
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
    assert errors == []
    with RabbitPublisher(rabbitmq.url, exchange) as publisher:
        relay_all(postgres, publisher, CLAIMS[claim])
    messages = drain(rabbitmq, queue)
    order = [int(payload["seq"]) for _, _, payload in messages]
    assert sorted(order) == [1, 2, 3, 4]
    assert late_events(messages) == late
    assert by_b == (2 if claim == "skip-locked" else 0)
    report = "\n".join(
        [
            f"claim {claim}: relay B published {by_b} while relay A held its batch",
            f"order seen by the consumer: {' '.join(map(str, order))}",
            f"events behind a later event of their aggregate: {late_events(messages)}",
        ]
    )
    expected_output(f"message_queues/transactional_outbox.order-{claim}", report)


# --------------------------------------------------------------------------- #
# Publisher confirms: an unroutable event
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(("mandatory", "pending"), [(False, 0), (True, 1)])
def test_unroutable_event(
    postgres: Postgres,
    rabbitmq: RabbitMQ,
    mandatory: bool,
    pending: int,
    expected_output: OutputCheck,
) -> None:
    """No queue is bound to the exchange: the broker confirms the publish anyway."""
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        create_schema(conn)
        log_versions(conn, rabbitmq)
        place_order(conn, "alice", 4200)
    exchange, _ = topology(rabbitmq, bind=False)
    with (
        RabbitPublisher(rabbitmq.url, exchange, mandatory=mandatory) as publisher,
        psycopg.connect(postgres.dsn, autocommit=True) as conn,
    ):
        published = relay_once(conn, publisher)
        attempts = scalar(conn, "SELECT attempts FROM outbox")
    outcome = "published" if published else "returned by the broker"
    assert counts(postgres)[1] == pending
    assert published == (0 if mandatory else 1)
    assert attempts == (1 if mandatory else 0)
    report = (
        f"mandatory={mandatory}: {outcome}, failed attempts: {attempts},"
        f" left pending: {counts(postgres)[1]}"
    )
    expected_output(
        f"message_queues/transactional_outbox.unroutable-{mandatory}", report
    )


# --------------------------------------------------------------------------- #
# The relay loop: NOTIFY wakes it, stop ends it
# --------------------------------------------------------------------------- #


def test_run_relay_wakes_on_notify_and_stops(
    postgres: Postgres, rabbitmq: RabbitMQ
) -> None:
    """With a 60 s poll, only the NOTIFY can publish the event within WAIT."""
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        create_schema(conn)
        log_versions(conn, rabbitmq)
    exchange, queue = topology(rabbitmq)
    channel = f"outbox_{postgres.schema}"  # NOTIFY channels are database-wide
    app = f"relay_{postgres.schema}"
    stop = threading.Event()
    result: list[int] = []
    errors: list[BaseException] = []

    def relay() -> None:
        try:
            with RabbitPublisher(rabbitmq.url, exchange) as publisher:
                dsn = f"{postgres.dsn}&application_name={app}"
                result.append(
                    run_relay(dsn, publisher, stop, channel=channel, poll_interval=60)
                )
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=relay)
    thread.start()
    try:
        with psycopg.connect(postgres.dsn, autocommit=True) as conn:
            deadline = time.monotonic() + WAIT
            while time.monotonic() < deadline:  # until the relay waits on LISTEN
                row = conn.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE application_name = %s"
                    " AND state = 'idle' AND query = 'COMMIT'",
                    (app,),
                ).fetchone()
                if row is not None:
                    break
                time.sleep(0.01)
            else:
                raise AssertionError("the relay never went idle")
            placed = time.monotonic()
            place_order(conn, "alice", 4200, channel=channel)
        while not (messages := drain(rabbitmq, queue)):
            assert time.monotonic() - placed < WAIT, "the NOTIFY did not wake the relay"
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join(WAIT)
    assert not thread.is_alive()
    assert errors == []
    assert result == [1]
    assert len(messages) == 1


def test_broker_unreachable_leaves_the_event_pending(postgres: Postgres) -> None:
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        create_schema(conn)
        place_order(conn, "alice", 4200)
        row = conn.execute("SHOW server_version").fetchone()
        print(f"PostgreSQL {row[0] if row else '?'}")
        nobody = "amqp://guest:guest@127.0.0.1:1/%2F"  # nothing listens on port 1
        with (
            RabbitPublisher(nobody, "events", timeout=2) as publisher,
            pytest.raises(BrokerUnavailable),
        ):
            relay_once(conn, publisher)
        assert scalar(conn, "SELECT attempts FROM outbox") == 0  # not counted
    assert counts(postgres)[1] == 1


# --------------------------------------------------------------------------- #
# A failing event holds back its own aggregate, not the relay
# --------------------------------------------------------------------------- #


def attempts_of(conn: Conn, event_type: str) -> tuple[int, bool]:
    row = conn.execute(
        "SELECT attempts, parked_at IS NOT NULL FROM outbox WHERE event_type = %s",
        (event_type,),
    ).fetchone()
    assert row is not None
    return int(row[0]), bool(row[1])


def test_an_unroutable_event_holds_back_only_its_aggregate(
    postgres: Postgres, rabbitmq: RabbitMQ
) -> None:
    """The oldest event has a type no queue is bound for; the rest still go out."""
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        create_schema(conn)
        log_versions(conn, rabbitmq)
        with conn.transaction():
            add_to_outbox(conn, "order-1", "invoice.issued", {"seq": 1})
            add_to_outbox(conn, "order-2", "order.placed", {"seq": 1})
            add_to_outbox(conn, "order-3", "order.placed", {"seq": 1})
            add_to_outbox(conn, "order-1", "order.placed", {"seq": 2})
    exchange, queue = topology(rabbitmq, pattern="order.*")
    with (
        RabbitPublisher(rabbitmq.url, exchange) as publisher,
        psycopg.connect(postgres.dsn, autocommit=True) as conn,
    ):
        assert relay_once(conn, publisher, max_attempts=3, backoff=0) == 2
        delivered = drain(rabbitmq, queue)
        assert sorted(aggregate for _, aggregate, _ in delivered) == [
            "order-2",
            "order-3",
        ]
        assert attempts_of(conn, "invoice.issued") == (1, False)
        for _ in range(2):
            assert relay_once(conn, publisher, max_attempts=3, backoff=0) == 0
        assert attempts_of(conn, "invoice.issued") == (3, True)  # parked
        assert relay_once(conn, publisher, max_attempts=3, backoff=0) == 0
        assert attempts_of(conn, "invoice.issued") == (3, True)  # not claimed again
        assert [row[1] for row in parked_events(conn)] == ["order-1"]
        # The fix: bind a queue for the type, then let the row go again.
        amqp = pika.BlockingConnection(pika.URLParameters(rabbitmq.url))
        amqp.channel().queue_bind(queue, exchange, "invoice.*")
        amqp.close()
        assert release_parked(conn, "order-1") == 1
        assert relay_once(conn, publisher) == 1
        assert relay_once(conn, publisher) == 1
    later = drain(rabbitmq, queue)
    assert [(aggregate, payload["seq"]) for _, aggregate, payload in later] == [
        ("order-1", 1),
        ("order-1", 2),
    ]
    assert counts(postgres)[1] == 0


# --------------------------------------------------------------------------- #
# An idle relay keeps its broker connection
# --------------------------------------------------------------------------- #


def wait_until_listening(conn: Conn, app: str) -> None:
    """Until the relay with ``application_name`` ``app`` waits on LISTEN."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        row = conn.execute(
            "SELECT 1 FROM pg_stat_activity WHERE application_name = %s"
            " AND state = 'idle' AND query = 'COMMIT'",
            (app,),
        ).fetchone()
        if row is not None:
            return
        time.sleep(0.01)
    raise AssertionError("the relay never went idle")


def wait_for_messages(rabbitmq: RabbitMQ, queue: str, what: str) -> int:
    start = time.monotonic()
    while not (messages := drain(rabbitmq, queue)):
        assert time.monotonic() - start < WAIT, what
        time.sleep(0.01)
    return len(messages)


def test_idle_relay_services_heartbeats(postgres: Postgres, rabbitmq: RabbitMQ) -> None:
    """A 2 s heartbeat, a quiet spell of three times that, then an event.

    Without heartbeats the broker drops the connection during the quiet spell;
    the publish then fails and the relay waits ``retry_delay`` (60 s) to retry,
    so the event could not arrive within WAIT.
    """
    heartbeat = 2
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        create_schema(conn)
        log_versions(conn, rabbitmq)
    exchange, queue = topology(rabbitmq)
    channel, app = f"outbox_{postgres.schema}", f"relay_{postgres.schema}"
    stop = threading.Event()
    result: list[int] = []
    errors: list[BaseException] = []

    def relay() -> None:
        url = f"{rabbitmq.url}?heartbeat={heartbeat}"
        try:
            with RabbitPublisher(url, exchange) as publisher:
                dsn = f"{postgres.dsn}&application_name={app}"
                result.append(
                    run_relay(
                        dsn,
                        publisher,
                        stop,
                        channel=channel,
                        poll_interval=60,
                        retry_delay=60,
                    )
                )
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=relay)
    thread.start()
    try:
        with psycopg.connect(postgres.dsn, autocommit=True) as conn:
            wait_until_listening(conn, app)
            place_order(conn, "alice", 4200, channel=channel)
            assert wait_for_messages(rabbitmq, queue, "the first event") == 1
            wait_until_listening(conn, app)
            time.sleep(3 * heartbeat)  # the quiet spell is what is under test
            place_order(conn, "bob", 1700, channel=channel)
            assert wait_for_messages(rabbitmq, queue, "the event after idling") == 1
    finally:
        stop.set()
        thread.join(WAIT + 60)
    assert errors == []
    assert result == [2]
