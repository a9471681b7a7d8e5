"""Idempotent consumer: record the message id in the same transaction as the effect.

A broker with at-least-once delivery hands the same message to a consumer more than
once: after a crash between commit and ack, after a lost ack, or to two consumers at
the same moment. The consumer inserts the message id into an inbox table with
``ON CONFLICT DO NOTHING`` inside the transaction that applies the effect, so the
database's unique index decides which delivery wins and the effect happens once.

Run against PostgreSQL with psycopg 3 and RabbitMQ with pika.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg

log = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]


# --8<-- [start:schema]
SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    id      text   PRIMARY KEY,
    balance bigint NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS inbox (
    consumer    text        NOT NULL,
    message_id  text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);
CREATE INDEX IF NOT EXISTS inbox_received_at ON inbox (received_at);
"""
# --8<-- [end:schema]


def create_schema(conn: Conn) -> None:
    """Create the ``accounts`` and ``inbox`` tables if they do not exist."""
    with conn.transaction():
        conn.execute(SCHEMA)


@dataclass(frozen=True)
class Credit:
    """A message that credits ``amount`` to ``account``.

    Attributes:
        message_id: The producer-assigned id. It is the same on every redelivery.
        account: The account to credit.
        amount: The amount, in cents.
        redelivered: The broker's redelivery flag. Use it for metrics only: a first
            delivery can be a duplicate too (the producer may have sent it twice).
    """

    message_id: str
    account: str
    amount: int
    redelivered: bool = False

    def body(self) -> bytes:
        """The JSON body a producer publishes (the id travels as ``message_id``)."""
        return json.dumps({"account": self.account, "amount": self.amount}).encode()

    @classmethod
    def from_amqp(
        cls, message_id: str | None, body: bytes, redelivered: bool
    ) -> Credit:
        """Decode a delivery.

        Raises:
            ValueError: The message has no id or its body is not a valid credit.
        """
        if not message_id:
            raise ValueError("message has no message_id")
        data = json.loads(body)  # JSONDecodeError is a ValueError
        valid = isinstance(data, dict) and isinstance(data.get("amount"), int)
        if not valid or not data.get("account"):
            raise ValueError(f"not a credit: {data!r}")
        return cls(message_id, str(data["account"]), data["amount"], redelivered)


Handler = Callable[[Conn, str, Credit], bool]
"""Applies one message inside the caller's transaction; returns True if it applied."""


def _apply(conn: Conn, credit: Credit) -> None:
    updated = conn.execute(
        "UPDATE accounts SET balance = balance + %s WHERE id = %s",
        (credit.amount, credit.account),
    ).rowcount
    if updated != 1:  # roll back the marker too, or the credit is lost for good
        raise LookupError(f"no account {credit.account!r}")


# --8<-- [start:naive]
def credit_without_dedupe(conn: Conn, consumer: str, credit: Credit) -> bool:
    """Anti-pattern: apply every delivery. A redelivered message credits twice."""
    _apply(conn, credit)
    return True


# --8<-- [end:naive]


# --8<-- [start:check-then-act]
def credit_if_unseen(conn: Conn, consumer: str, credit: Credit) -> bool:
    """Anti-pattern: look for the id, then act.

    Two transactions that run at once both see no row, so both apply the credit.
    The unique index stops the second marker, but not the second effect.
    """
    seen = conn.execute(
        "SELECT 1 FROM inbox WHERE consumer = %s AND message_id = %s",
        (consumer, credit.message_id),
    ).fetchone()
    if seen:
        return False
    _apply(conn, credit)
    conn.execute(
        "INSERT INTO inbox (consumer, message_id) VALUES (%s, %s)"
        " ON CONFLICT DO NOTHING",
        (consumer, credit.message_id),
    )
    return True


# --8<-- [end:check-then-act]


# --8<-- [start:separate-store]
def mark_in_separate_store(marker: Conn) -> Handler:
    """Anti-pattern: dedupe in another transaction (another connection, or Redis).

    The marker commits at once, the credit commits later with the caller's
    transaction. A crash between the two leaves the marker and loses the credit:
    the redelivery is skipped as a duplicate.
    """

    def handle(conn: Conn, consumer: str, credit: Credit) -> bool:
        first = marker.execute(  # autocommit: this commits now
            "INSERT INTO inbox (consumer, message_id) VALUES (%s, %s)"
            " ON CONFLICT DO NOTHING RETURNING 1",
            (consumer, credit.message_id),
        ).fetchone()
        if first is None:
            return False
        _apply(conn, credit)
        return True

    return handle


# --8<-- [end:separate-store]


# --8<-- [start:credit-once]
def credit_once(conn: Conn, consumer: str, credit: Credit) -> bool:
    """Apply the credit once per ``(consumer, message_id)``.

    Call it inside a transaction and commit before you ack. The insert returns a
    row only for the first delivery. A concurrent duplicate waits on the unique
    index until the first transaction ends: after a commit it gets no row and
    skips; after a rollback it inserts and applies.

    Returns:
        True if this delivery applied the credit, False for a duplicate.
    """
    first = conn.execute(
        "INSERT INTO inbox (consumer, message_id) VALUES (%s, %s)"
        " ON CONFLICT DO NOTHING RETURNING 1",
        (consumer, credit.message_id),
    ).fetchone()
    if first is None:
        log.info("duplicate %s for %s: skipped", credit.message_id, consumer)
        return False
    _apply(conn, credit)
    return True


# --8<-- [end:credit-once]


# --8<-- [start:consume]
def consume(
    channel: Any,
    queue: str,
    conn: Conn,
    handler: Handler,
    consumer: str,
    stop: threading.Event,
    *,
    idle_timeout: float = 1.0,
) -> None:
    """Consume ``queue`` until ``stop`` is set: commit first, then ack.

    ``channel`` is a pika ``BlockingChannel`` with a prefetch set; ``conn`` is in
    autocommit mode so that each ``transaction()`` block is one transaction.
    ``consumer`` is half of the inbox key. The loop checks ``stop`` at least every
    ``idle_timeout`` seconds.

    Raises:
        Exception: Whatever the handler or the database raised, after the
            transaction rolled back and the message was requeued.
    """
    deliveries = channel.consume(queue, inactivity_timeout=idle_timeout)
    try:
        for method, properties, body in deliveries:
            if method is None:  # idle_timeout passed without a delivery
                if stop.is_set():
                    break
                continue
            if stop.is_set():  # not processed, not failed: nack does not count
                channel.basic_nack(method.delivery_tag, requeue=True)
                break
            _handle(channel, method, properties, body, conn, handler, consumer)
    finally:
        channel.cancel()  # deliveries still buffered go back to the queue


# --8<-- [end:consume]


# --8<-- [start:settle]
def _handle(
    channel: Any,
    method: Any,
    properties: Any,
    body: bytes,
    conn: Conn,
    handler: Handler,
    consumer: str,
) -> None:
    try:
        credit = Credit.from_amqp(properties.message_id, body, method.redelivered)
    except ValueError:
        log.exception("rejecting malformed message")
        channel.basic_reject(method.delivery_tag, requeue=False)  # to the DLX
        return
    try:
        with conn.transaction():
            handler(conn, consumer, credit)
    except Exception:  # a failure: reject counts toward a quorum queue's limit
        channel.basic_reject(method.delivery_tag, requeue=True)
        raise
    channel.basic_ack(method.delivery_tag)  # only after the commit


# --8<-- [end:settle]


# --8<-- [start:retention]
PURGE = """
DELETE FROM inbox
WHERE (consumer, message_id) IN (
    SELECT consumer, message_id FROM inbox
    WHERE received_at < now() - %s
    ORDER BY received_at
    LIMIT %s
)
"""


def purge_inbox(conn: Conn, *, keep: timedelta, batch_size: int = 1000) -> int:
    """Delete inbox rows older than ``keep``, one short transaction per batch.

    Keep rows longer than the longest time a message can come back: the broker's
    redelivery window, retries, and replays from a dead-letter queue. A duplicate
    that arrives after its row is purged is applied again.

    Returns:
        The number of rows deleted.
    """
    deleted = 0
    while True:
        with conn.transaction():
            batch = conn.execute(PURGE, (keep, batch_size)).rowcount
        deleted += batch
        if batch < batch_size:
            return deleted


# --8<-- [end:retention]
