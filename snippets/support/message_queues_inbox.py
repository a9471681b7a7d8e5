"""Harness for the idempotent-consumer demos and tests.

The database and queue helpers, the consumer process that is killed at a chosen
point, and the scenarios the page shows, each returning what it observed.
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

import pika
import psycopg

from snippets.message_queues.idempotent_consumer import (
    Conn,
    Credit,
    Handler,
    consume,
    create_schema,
    credit_once,
    purge_inbox,
)
from snippets.support.services import Postgres, RabbitMQ

__all__ = [
    "AMOUNT",
    "CHILD",
    "CONSUMER",
    "WAIT",
    "balance",
    "consume_one",
    "inbox_rows",
    "kill_consumer_at",
    "publish_credit",
    "queue_depth",
    "race_in_flight",
    "released_together",
    "retention",
    "run_crash_scenario",
    "setup_db",
    "versions",
    "wait_until_blocked",
]

ROOT = Path(__file__).resolve().parents[2]
CHILD = "snippets.support.message_queues_inbox_child"
CONSUMER = "billing"
AMOUNT = 100
WAIT = 15.0  # seconds; every wait here is bounded by it


def versions(conn: Conn, amqp: pika.BlockingConnection | None = None) -> str:
    """The server versions, for a test's ``-s`` output."""
    row = conn.execute("SHOW server_version").fetchone()
    line = f"PostgreSQL {row[0] if row else '?'}"
    if amqp is not None:
        line += f", RabbitMQ {amqp._impl.server_properties.get('version')}"
    return line


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


def kill_consumer_at(mode: str, name: str, dsn: str, url: str, queue: str) -> None:
    """Run a consumer process until its crash point, then SIGKILL it."""
    args = [sys.executable, "-m", CHILD, mode, name, dsn, url, queue]
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
        result = balance(marker), inbox_rows(marker)
    assert queue_depth(rabbitmq, queue) == 0, "the redelivery was not acked"
    return redelivered, *result


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


def released_together(
    dsn: str, handler: Handler, rounds: int = 20
) -> tuple[list[bool], int]:
    """Two consumers get message N at the same moment, for ``rounds`` rounds.

    Returns whether each delivery applied, and the balance afterwards.
    """
    barrier = threading.Barrier(2)
    applied: list[bool] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def consumer() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
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
    if errors:
        raise errors[0]
    with psycopg.connect(dsn, autocommit=True) as conn:
        return applied, balance(conn)


def retention(dsn: str) -> tuple[int, int, bool, bool, int]:
    """Three markers 8 days old, two new; purge older than 7 days in batches of 2.

    Returns (purged, kept, late duplicate applied, recent duplicate applied,
    balance).
    """
    with psycopg.connect(dsn, autocommit=True) as conn:
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
        return purged, kept, late, recent, balance(conn)
