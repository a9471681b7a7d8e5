"""Transactional outbox against PostgreSQL and RabbitMQ (publisher confirms).

The crash tests run the writer or the relay in a real process and stop it with
SIGKILL at a chosen point. The relay races hold the first publish of each relay at
a Barrier, so both relays have claimed before either publishes. The scenarios
live in ``snippets/support/message_queues_outbox.py``, which the page's demo
runs too; the tests assert what they observe.
"""

from __future__ import annotations

import threading
import time

import pika
import psycopg
import pytest

from snippets.message_queues.transactional_outbox import (
    BrokerUnavailable,
    Conn,
    RabbitPublisher,
    add_to_outbox,
    create_schema,
    parked_events,
    place_order,
    relay_once,
    release_parked,
    run_relay,
)
from snippets.support import message_queues_outbox as harness
from snippets.support.message_queues_outbox import (
    WAIT,
    counts,
    drain,
    late_events,
    scalar,
    topology,
)
from tests.conftest import Postgres, RabbitMQ


def log_versions(postgres: Postgres, rabbitmq: RabbitMQ) -> None:
    """Print the server versions (visible with ``pytest -s``)."""
    print(harness.versions(postgres, rabbitmq))


# --------------------------------------------------------------------------- #
# The dual write, and the outbox, under SIGKILL
# --------------------------------------------------------------------------- #


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
    postgres: Postgres, rabbitmq: RabbitMQ, mode: str, expected: tuple[int, int]
) -> None:
    result = harness.crash(postgres, rabbitmq, mode)
    log_versions(postgres, rabbitmq)
    assert (result.orders, result.delivered) == expected
    assert result.pending == 0
    assert result.relayed == (result.delivered if mode.startswith("outbox") else 0)


def test_relay_killed_after_publish_publishes_again(
    postgres: Postgres, rabbitmq: RabbitMQ
) -> None:
    pending_after_crash, relayed, ids = harness.relay_crash(postgres, rabbitmq)
    assert pending_after_crash == 1  # the mark rolled back with the process
    assert relayed == 1
    assert len(ids) == 2 and len(set(ids)) == 1  # the same event, twice
    assert counts(postgres)[1] == 0


# --------------------------------------------------------------------------- #
# Two relays at once
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("claim", "duplicates"),
    [("unlocked", 10), ("skip-locked", 0), ("in-order", 0)],
)
def test_two_relays_claim_at_the_same_moment(
    postgres: Postgres, rabbitmq: RabbitMQ, claim: str, duplicates: int
) -> None:
    """20 events, batches of 10: both relays claim before either publishes."""
    ids = harness.race(postgres, rabbitmq, claim)
    assert len(set(ids)) == 20  # none left behind
    assert len(ids) - len(set(ids)) == duplicates
    assert counts(postgres)[1] == 0


def test_two_relays_over_many_runs(postgres: Postgres, rabbitmq: RabbitMQ) -> None:
    """Two relays drain 100 events per run, 10 runs, both holding rows at once."""
    messages, left = harness.many_runs(postgres, rabbitmq)
    ids = [message_id for message_id, _, _ in messages]
    assert left == [0] * 10, "a run left events behind"
    assert len(ids) == 1000
    assert len(set(ids)) == 1000
    assert late_events(messages) == 0


# --------------------------------------------------------------------------- #
# Order within an aggregate
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(("claim", "late"), [("skip-locked", 2), ("in-order", 0)])
def test_order_within_an_aggregate(
    postgres: Postgres, rabbitmq: RabbitMQ, claim: str, late: int
) -> None:
    """Relay A claims and stalls before publishing; relay B runs meanwhile."""
    by_b, messages = harness.order_within_an_aggregate(postgres, rabbitmq, claim)
    order = [int(payload["seq"]) for _, _, payload in messages]
    assert sorted(order) == [1, 2, 3, 4]
    assert late_events(messages) == late
    assert by_b == (2 if claim == "skip-locked" else 0)


# --------------------------------------------------------------------------- #
# Publisher confirms: an unroutable event
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(("mandatory", "pending"), [(False, 0), (True, 1)])
def test_unroutable_event(
    postgres: Postgres, rabbitmq: RabbitMQ, mandatory: bool, pending: int
) -> None:
    """No queue is bound to the exchange: the broker confirms the publish anyway."""
    published, attempts, left = harness.unroutable(postgres, rabbitmq, mandatory)
    assert left == pending
    assert published == (0 if mandatory else 1)
    assert attempts == (1 if mandatory else 0)


# --------------------------------------------------------------------------- #
# The relay loop: NOTIFY wakes it, stop ends it
# --------------------------------------------------------------------------- #


def test_run_relay_wakes_on_notify_and_stops(
    postgres: Postgres, rabbitmq: RabbitMQ
) -> None:
    """With a 60 s poll, only the NOTIFY can publish the event within WAIT."""
    harness.setup(postgres)
    log_versions(postgres, rabbitmq)
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
    harness.setup(postgres)
    log_versions(postgres, rabbitmq)
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
