"""The inbox table and the handler that applies a message once."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg

__all__ = [
    "PURGE",
    "SCHEMA",
    "Conn",
    "Credit",
    "Handler",
    "apply_credit",
    "create_schema",
    "credit_once",
    "purge_inbox",
]

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


def apply_credit(conn: Conn, credit: Credit) -> None:
    """Credit the account; raise ``LookupError`` if it does not exist."""
    updated = conn.execute(
        "UPDATE accounts SET balance = balance + %s WHERE id = %s",
        (credit.amount, credit.account),
    ).rowcount
    if updated != 1:  # roll back the marker too, or the credit is lost for good
        raise LookupError(f"no account {credit.account!r}")


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
    apply_credit(conn, credit)
    return True


# --8<-- [end:credit-once]


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
