"""Idempotent consumer against PostgreSQL and RabbitMQ.

The crash tests run a real consumer process, stop it with SIGKILL at a chosen point
(after the commit and before the ack, or between a separate marker and the effect)
and let RabbitMQ redeliver the unacked message to a second consumer. The race tests
hold one transaction open while a duplicate arrives, so the interleaving is fixed,
not left to the scheduler.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pika
import psycopg
import pytest

from snippets.message_queues.idempotent_consumer import (
    Conn,
    Credit,
    Handler,
    consume,
    create_schema,
    credit_if_unseen,
    credit_once,
    credit_without_dedupe,
    mark_in_separate_store,
    purge_inbox,
)
from tests.conftest import OutputCheck, Postgres, RabbitMQ

ROOT = Path(__file__).resolve().parents[2]
CONSUMER = "billing"
AMOUNT = 100
WAIT = 15.0  # seconds; every wait in this module is bounded by it


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #


def log_versions(conn: Conn, amqp: Any | None = None) -> None:
    """Print the server versions (visible with ``pytest -s``)."""
    row = conn.execute("SHOW server_version").fetchone()
    assert row is not None
    line = f"PostgreSQL {row[0]}"
    if amqp is not None:
        line += f", RabbitMQ {amqp._impl.server_properties.get('version')}"
    print(line)


def setup_db(postgres: Postgres) -> None:
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        create_schema(conn)
        conn.execute("INSERT INTO accounts (id) VALUES ('alice')")


def balance(conn: Conn) -> int:
    row = conn.execute("SELECT balance FROM accounts WHERE id = 'alice'").fetchone()
    assert row is not None
    return int(row[0])


def inbox_rows(conn: Conn) -> int:
    row = conn.execute("SELECT count(*) FROM inbox").fetchone()
    assert row is not None
    return int(row[0])


def publish_credit(rabbitmq: RabbitMQ, queue: str, credit: Credit) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq.url))
    try:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True)
        channel.confirm_delivery()
        props = pika.BasicProperties(message_id=credit.message_id, delivery_mode=2)
        channel.basic_publish("", queue, credit.body(), props, mandatory=True)
    finally:
        connection.close()


def queue_depth(rabbitmq: RabbitMQ, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq.url))
    try:
        declared = connection.channel().queue_declare(queue, passive=True)
        return int(declared.method.message_count)
    finally:
        connection.close()


# The consumer process that gets killed. It runs the snippet's `consume` loop and
# pauses at the crash point until the parent sends SIGKILL.
CHILD = r"""
import sys, threading
import pika, psycopg
from pika.adapters.blocking_connection import BlockingChannel
from snippets.message_queues import idempotent_consumer as ic

mode, name, dsn, url, queue = sys.argv[1:6]

def crash_point(*args, **kwargs):
    print("paused", flush=True)
    threading.Event().wait()  # until SIGKILL

with psycopg.connect(dsn, autocommit=True) as conn, \
        psycopg.connect(dsn, autocommit=True) as marker:
    handler = {
        "credit_without_dedupe": ic.credit_without_dedupe,
        "credit_once": ic.credit_once,
        "mark_in_separate_store": ic.mark_in_separate_store(marker),
    }[name]
    if mode == "after-commit":  # the effect is committed, the ack never leaves
        BlockingChannel.basic_ack = crash_point
    else:  # "before-commit": the handler ran, the transaction is still open
        inner = handler
        def handler(conn, consumer, credit):
            inner(conn, consumer, credit)
            crash_point()
    channel = pika.BlockingConnection(pika.URLParameters(url)).channel()
    channel.basic_qos(prefetch_count=1)
    ic.consume(channel, queue, conn, handler, "billing", threading.Event())
"""


def kill_consumer_at(mode: str, name: str, dsn: str, url: str, queue: str) -> None:
    """Run a consumer process until its crash point, then SIGKILL it."""
    args = [sys.executable, "-c", CHILD, mode, name, dsn, url, queue]
    child = subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], WAIT)
        assert ready, "the consumer never reached its crash point"
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


def consume_one(
    postgres: Postgres, rabbitmq: RabbitMQ, queue: str, handler: Handler
) -> list[Credit]:
    """Run the snippet's consumer until it has handled one delivery and acked it."""
    seen: list[Credit] = []
    errors: list[BaseException] = []
    handled, stop = threading.Event(), threading.Event()

    def recording(conn: Conn, consumer: str, credit: Credit) -> bool:
        applied = handler(conn, consumer, credit)
        seen.append(credit)
        handled.set()  # the loop commits and acks before it looks at `stop`
        return applied

    def run() -> None:
        try:
            connection = pika.BlockingConnection(pika.URLParameters(rabbitmq.url))
            with psycopg.connect(postgres.dsn, autocommit=True) as conn:
                channel = connection.channel()
                channel.basic_qos(prefetch_count=1)
                consume(channel, queue, conn, recording, CONSUMER, stop)
            connection.close()
        except BaseException as error:  # surfaced by the assertion below
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert handled.wait(WAIT), "the redelivery never arrived"
    finally:
        stop.set()
        thread.join(WAIT)
    assert not thread.is_alive()
    assert errors == []
    return seen


def crash_report(name: str, crash: str, redeliveries: list[Credit], bal: int) -> str:
    """One delivery reached the killed consumer; ``redeliveries`` came after it."""
    flagged = sum(credit.redelivered for credit in redeliveries)
    return "\n".join(
        [
            f"handler: {name}",
            f"crash: SIGKILL {crash}",
            f"deliveries: {1 + len(redeliveries)} (redelivered: {flagged})",
            f"balance: {bal} after one credit of {AMOUNT}",
        ]
    )


def run_crash_scenario(
    postgres: Postgres,
    rabbitmq: RabbitMQ,
    name: str,
    mode: str,
    handler: Callable[[Conn], Handler],
) -> tuple[list[Credit], int, int]:
    """Deliver one credit, kill the consumer at ``mode``, let a second one finish."""
    setup_db(postgres)
    queue = rabbitmq.name("credits")
    publish_credit(rabbitmq, queue, Credit("credit-1", "alice", AMOUNT))
    kill_consumer_at(mode, name, postgres.dsn, rabbitmq.url, queue)
    with psycopg.connect(postgres.dsn, autocommit=True) as marker:
        redelivered = consume_one(postgres, rabbitmq, queue, handler(marker))
        amqp = pika.BlockingConnection(pika.URLParameters(rabbitmq.url))
        log_versions(marker, amqp)
        amqp.close()
        result = balance(marker), inbox_rows(marker)
    assert queue_depth(rabbitmq, queue) == 0, "the redelivery was not acked"
    return redelivered, *result


# --------------------------------------------------------------------------- #
# Redelivery after a crash between commit and ack
# --------------------------------------------------------------------------- #


def test_redelivery_after_crash_credits_twice_without_inbox(
    postgres: Postgres, rabbitmq: RabbitMQ, expected_output: OutputCheck
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
    report = crash_report(
        "credit_without_dedupe", "after commit, before ack", redelivered, bal
    )
    expected_output("message_queues/idempotent_consumer.crash-without-inbox", report)


def test_redelivery_after_crash_credits_once_with_inbox(
    postgres: Postgres, rabbitmq: RabbitMQ, expected_output: OutputCheck
) -> None:
    redelivered, bal, rows = run_crash_scenario(
        postgres, rabbitmq, "credit_once", "after-commit", lambda _: credit_once
    )
    assert [c.redelivered for c in redelivered] == [True]
    assert bal == AMOUNT
    assert rows == 1
    report = crash_report("credit_once", "after commit, before ack", redelivered, bal)
    expected_output("message_queues/idempotent_consumer.crash-with-inbox", report)


def test_marker_in_a_separate_transaction_loses_the_credit(
    postgres: Postgres, rabbitmq: RabbitMQ, expected_output: OutputCheck
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
    report = crash_report(
        "mark_in_separate_store",
        "after the marker commit, before the credit",
        redelivered,
        bal,
    )
    expected_output("message_queues/idempotent_consumer.crash-separate-store", report)


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


def wait_until_blocked(watcher: Conn, waiter_pid: int, holder_pid: int) -> None:
    """Return once ``waiter_pid`` waits on a lock that ``holder_pid`` holds."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        row = watcher.execute(
            "SELECT %s = ANY(pg_blocking_pids(%s))", (holder_pid, waiter_pid)
        ).fetchone()
        if row is not None and row[0]:
            return
        time.sleep(0.01)
    raise AssertionError(f"backend {waiter_pid} never waited on {holder_pid}")


def race_in_flight(dsn: str, handler: Handler) -> tuple[bool, bool]:
    """Deliver one message twice; the second arrives while the first is uncommitted.

    A runs the handler and keeps its transaction open. B runs the same message.
    A commits only after PostgreSQL reports B waiting on A's lock, so B's read
    happened before A's commit every time.
    """
    credit = Credit("credit-1", "alice", AMOUNT)
    results: dict[str, bool] = {}
    errors: list[BaseException] = []
    a_done, release = threading.Event(), threading.Event()
    with (
        psycopg.connect(dsn, autocommit=True) as a,
        psycopg.connect(dsn, autocommit=True) as b,
        psycopg.connect(dsn, autocommit=True) as watcher,
    ):

        def run(name: str, conn: Conn) -> None:
            try:
                with conn.transaction():
                    results[name] = handler(conn, CONSUMER, credit)
                    if name == "a":
                        a_done.set()
                        assert release.wait(WAIT)
            except BaseException as error:
                errors.append(error)

        first = threading.Thread(target=run, args=("a", a))
        second = threading.Thread(target=run, args=("b", b))
        first.start()
        assert a_done.wait(WAIT)
        second.start()
        wait_until_blocked(watcher, b.info.backend_pid, a.info.backend_pid)
        release.set()
        first.join(WAIT)
        second.join(WAIT)
    assert not first.is_alive() and not second.is_alive()
    assert errors == []
    return results["a"], results["b"]


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
    expected_output: OutputCheck,
) -> None:
    setup_db(postgres)
    outcome = race_in_flight(postgres.dsn, handler)
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        log_versions(conn)
        bal, rows = balance(conn), inbox_rows(conn)
    assert outcome == applied
    assert bal == expected_balance
    assert rows == 1
    name = handler.__name__
    report = "\n".join(
        [
            f"handler: {name}",
            f"applied: first {outcome[0]}, duplicate {outcome[1]}",
            f"balance: {bal} after one credit of {AMOUNT}",
        ]
    )
    expected_output(f"message_queues/idempotent_consumer.race-{name}", report)


@pytest.mark.parametrize(
    "handler", [credit_if_unseen, credit_once], ids=["check-then-act", "inbox-insert"]
)
def test_two_consumers_released_together(
    postgres: Postgres, handler: Handler, expected_output: OutputCheck
) -> None:
    """Both consumers get message N at the same moment, for N rounds.

    The inbox applies exactly one copy per round. Check-then-act applies one or
    two, depending on the schedule: only its bookkeeping is checked here.
    """
    setup_db(postgres)
    rounds = 20
    barrier = threading.Barrier(2)
    applied: list[bool] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def consumer() -> None:
        try:
            with psycopg.connect(postgres.dsn, autocommit=True) as conn:
                for n in range(rounds):
                    credit = Credit(f"credit-{n}", "alice", AMOUNT)
                    barrier.wait(timeout=WAIT)
                    with conn.transaction():
                        result = handler(conn, CONSUMER, credit)
                    with lock:
                        applied.append(result)
        except BaseException as error:
            barrier.abort()
            errors.append(error)

    threads = [threading.Thread(target=consumer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert errors == []
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        log_versions(conn)
        bal = balance(conn)
    assert len(applied) == 2 * rounds
    assert bal == sum(applied) * AMOUNT
    if handler is not credit_once:
        assert rounds <= sum(applied) <= 2 * rounds
        return
    assert sum(applied) == rounds
    report = "\n".join(
        [
            f"handler: {handler.__name__}",
            f"rounds: {rounds}, 2 deliveries per round released by a Barrier",
            f"applied: {sum(applied)} of {len(applied)} deliveries",
            f"balance: {bal} for {rounds} credits of {AMOUNT}",
        ]
    )
    expected_output(
        f"message_queues/idempotent_consumer.barrier-{handler.__name__}", report
    )


# --------------------------------------------------------------------------- #
# Retention
# --------------------------------------------------------------------------- #


def test_purge_keeps_recent_rows_and_reopens_old_duplicates(
    postgres: Postgres, expected_output: OutputCheck
) -> None:
    setup_db(postgres)
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        log_versions(conn)
        conn.execute(
            "INSERT INTO inbox (consumer, message_id, received_at)"
            " SELECT %s, 'old-' || n, now() - interval '8 days'"
            " FROM generate_series(1, 3) n",
            (CONSUMER,),
        )
        conn.execute(
            "INSERT INTO inbox (consumer, message_id)"
            " SELECT %s, 'new-' || n FROM generate_series(1, 2) n",
            (CONSUMER,),
        )
        purged = purge_inbox(conn, keep=timedelta(days=7), batch_size=2)
        kept = inbox_rows(conn)
        with conn.transaction():
            late = credit_once(conn, CONSUMER, Credit("old-1", "alice", AMOUNT))
        with conn.transaction():
            recent = credit_once(conn, CONSUMER, Credit("new-1", "alice", AMOUNT))
        bal = balance(conn)
    assert (purged, kept) == (3, 2)
    assert late is True  # its marker is gone: the duplicate applies again
    assert recent is False
    assert bal == AMOUNT
    report = "\n".join(
        [
            f"purged: {purged} rows older than 7 days (batches of 2), kept: {kept}",
            f"late duplicate of a purged message applied: {late}",
            f"duplicate of a kept message applied: {recent}",
        ]
    )
    expected_output("message_queues/idempotent_consumer.retention", report)
