"""Idempotent consumer against PostgreSQL and RabbitMQ.

The crash tests run a real consumer process, stop it with SIGKILL at a chosen point
(after the commit and before the ack, or between a separate marker and the effect)
and let RabbitMQ redeliver the unacked message to a second consumer. The race tests
hold one transaction open while a duplicate arrives, so the interleaving is fixed,
not left to the scheduler. The scenarios live in
``snippets/support/message_queues_inbox.py``; the page's demo runs them too.
"""

from __future__ import annotations

import threading
from typing import Any

import pika
import psycopg
import pytest

from snippets.message_queues.idempotent_consumer import (
    Conn,
    Credit,
    Handler,
    consume,
    credit_once,
)
from snippets.message_queues.idempotent_consumer.demo import (
    credit_if_unseen,
    credit_without_dedupe,
    mark_in_separate_store,
)
from snippets.support.message_queues_inbox import (
    AMOUNT,
    CONSUMER,
    balance,
    inbox_rows,
    publish_credit,
    queue_depth,
    race_in_flight,
    released_together,
    retention,
    run_crash_scenario,
    setup_db,
    versions,
)
from tests.conftest import Postgres, RabbitMQ


def log_versions(conn: Conn, amqp: Any | None = None) -> None:
    """Print the server versions (visible with ``pytest -s``)."""
    print(versions(conn, amqp))


class Settlements:
    """A real pika channel that records how each delivery was settled."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self.settled: list[tuple[str, bool]] = []

    def basic_reject(self, delivery_tag: int, requeue: bool = True) -> None:
        self.settled.append(("basic_reject", requeue))
        self.channel.basic_reject(delivery_tag, requeue=requeue)

    def basic_nack(
        self, delivery_tag: int, multiple: bool = False, requeue: bool = True
    ) -> None:
        self.settled.append(("basic_nack", requeue))
        self.channel.basic_nack(delivery_tag, multiple=multiple, requeue=requeue)

    def basic_ack(self, delivery_tag: int) -> None:
        self.settled.append(("basic_ack", False))
        self.channel.basic_ack(delivery_tag)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.channel, name)


# --------------------------------------------------------------------------- #
# Redelivery after a crash between commit and ack
# --------------------------------------------------------------------------- #


def test_redelivery_after_crash_credits_twice_without_inbox(
    postgres: Postgres, rabbitmq: RabbitMQ
) -> None:
    redelivered, bal, _ = run_crash_scenario(
        postgres,
        rabbitmq,
        "credit_without_dedupe",
        "after-commit",
        lambda _: credit_without_dedupe,
    )
    assert [c.redelivered for c in redelivered] == [True]
    assert bal == 2 * AMOUNT  # the killed consumer's commit, then the redelivery


def test_redelivery_after_crash_credits_once_with_inbox(
    postgres: Postgres, rabbitmq: RabbitMQ
) -> None:
    redelivered, bal, rows = run_crash_scenario(
        postgres, rabbitmq, "credit_once", "after-commit", lambda _: credit_once
    )
    assert [c.redelivered for c in redelivered] == [True]
    assert bal == AMOUNT
    assert rows == 1


def test_marker_in_a_separate_transaction_loses_the_credit(
    postgres: Postgres, rabbitmq: RabbitMQ
) -> None:
    redelivered, bal, rows = run_crash_scenario(
        postgres,
        rabbitmq,
        "mark_in_separate_store",
        "before-commit",
        mark_in_separate_store,
    )
    assert [c.redelivered for c in redelivered] == [True]
    assert rows == 1  # the marker survived the crash ...
    assert bal == 0  # ... the credit did not, and the redelivery was skipped


def test_failed_handler_leaves_no_marker_and_requeues(
    postgres: Postgres, rabbitmq: RabbitMQ
) -> None:
    setup_db(postgres)
    queue = rabbitmq.name("credits")
    publish_credit(
        rabbitmq, queue, Credit("credit-1", "bob", AMOUNT)
    )  # no such account
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq.url))
    try:
        channel = Settlements(connection.channel())
        channel.basic_qos(prefetch_count=1)
        with psycopg.connect(postgres.dsn, autocommit=True) as conn:
            log_versions(conn, connection)
            with pytest.raises(LookupError):
                consume(channel, queue, conn, credit_once, CONSUMER, threading.Event())
            rows = inbox_rows(conn)
        depth = queue_depth(rabbitmq, queue)  # with the connection still open
    finally:
        connection.close()
    assert rows == 0  # the marker rolled back with the failed credit
    assert depth == 1  # and the message is back in the queue
    # A failure is a basic.reject: RabbitMQ 4.3+ counts it toward delivery-limit.
    assert channel.settled == [("basic_reject", True)]


def test_stop_requeues_the_message_in_hand(
    postgres: Postgres, rabbitmq: RabbitMQ
) -> None:
    """``stop`` is set when a delivery arrives: it goes back, not into limbo."""
    setup_db(postgres)
    queue = rabbitmq.name("credits")
    publish_credit(rabbitmq, queue, Credit("credit-1", "alice", AMOUNT))
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq.url))
    stop = threading.Event()
    stop.set()
    try:
        channel = Settlements(connection.channel())
        channel.basic_qos(prefetch_count=1)
        with psycopg.connect(postgres.dsn, autocommit=True) as conn:
            log_versions(conn, connection)
            consume(channel, queue, conn, credit_once, CONSUMER, stop)
            rows = inbox_rows(conn)
        depth = queue_depth(rabbitmq, queue)  # unacked would not count as ready
    finally:
        connection.close()
    assert rows == 0
    assert depth == 1
    # Not processed is not failed: a nack does not count toward delivery-limit.
    assert channel.settled == [("basic_nack", True)]


# --------------------------------------------------------------------------- #
# Two deliveries of one message at the same moment
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("handler", "applied", "expected_balance"),
    [
        (credit_if_unseen, (True, True), 2 * AMOUNT),
        (credit_once, (True, False), AMOUNT),
    ],
    ids=["check-then-act", "inbox-insert"],
)
def test_duplicate_arriving_mid_transaction(
    postgres: Postgres,
    handler: Handler,
    applied: tuple[bool, bool],
    expected_balance: int,
) -> None:
    setup_db(postgres)
    outcome = race_in_flight(postgres.dsn, handler)
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        log_versions(conn)
        bal, rows = balance(conn), inbox_rows(conn)
    assert outcome == applied
    assert bal == expected_balance
    assert rows == 1


@pytest.mark.parametrize(
    "handler", [credit_if_unseen, credit_once], ids=["check-then-act", "inbox-insert"]
)
def test_two_consumers_released_together(postgres: Postgres, handler: Handler) -> None:
    """Both consumers get message N at the same moment, for N rounds.

    The inbox applies exactly one copy per round. Check-then-act applies one or
    two, depending on the schedule: only its bookkeeping is checked here.
    """
    setup_db(postgres)
    rounds = 20
    applied, bal = released_together(postgres.dsn, handler, rounds)
    assert len(applied) == 2 * rounds
    assert bal == sum(applied) * AMOUNT
    if handler is credit_once:
        assert sum(applied) == rounds
    else:
        assert rounds <= sum(applied) <= 2 * rounds


# --------------------------------------------------------------------------- #
# Retention
# --------------------------------------------------------------------------- #


def test_purge_keeps_recent_rows_and_reopens_old_duplicates(
    postgres: Postgres,
) -> None:
    setup_db(postgres)
    purged, kept, late, recent, bal = retention(postgres.dsn)
    assert (purged, kept) == (3, 2)
    assert late is True  # its marker is gone: the duplicate applies again
    assert recent is False
    assert bal == AMOUNT
