"""Transactional outbox: the event commits with the change, a relay publishes it.

Writing to the database and then publishing to a broker is two writes with no
transaction around them: a crash between them loses the event (commit, then
publish) or announces a change that never committed (publish, then commit). The
outbox writes the event as a row in the same transaction as the change. A relay
claims pending rows with ``FOR UPDATE SKIP LOCKED``, publishes them with publisher
confirms, and marks them published in the claiming transaction, so two relays can
run at once. Delivery is at-least-once: a relay that dies after the broker's
confirm and before its commit publishes the event again.

Run against PostgreSQL with psycopg 3 and RabbitMQ with pika.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

import pika
import psycopg
from pika.exceptions import AMQPError, NackError, UnroutableError
from psycopg import sql

log = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]


# --8<-- [start:schema]
SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer    text   NOT NULL,
    total_cents bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     uuid        NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    aggregate_id text        NOT NULL,
    event_type   text        NOT NULL,
    payload      jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    attempts     integer     NOT NULL DEFAULT 0,   -- failed publishes
    retry_at     timestamptz NOT NULL DEFAULT now(),
    last_error   text,
    parked_at    timestamptz  -- set after max_attempts: alert on these rows
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (id)
    WHERE published_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_pending_by_aggregate ON outbox (aggregate_id, id)
    WHERE published_at IS NULL;
"""
# --8<-- [end:schema]


def create_schema(conn: Conn) -> None:
    """Create the ``orders`` and ``outbox`` tables if they do not exist."""
    with conn.transaction():
        conn.execute(SCHEMA)


@dataclass(frozen=True)
class Event:
    """An event as it leaves the service.

    Attributes:
        event_id: Unique per event; published as the AMQP ``message_id`` so that
            consumers can drop duplicates.
        aggregate_id: The entity the event is about; events of one aggregate are
            published in the order they were written.
        event_type: Also the routing key.
        payload: The JSON body.
    """

    event_id: str
    aggregate_id: str
    event_type: str
    payload: dict[str, Any]


class PublishError(Exception):
    """The broker did not take the event; it stays pending in the outbox."""


class BrokerUnavailable(PublishError):
    """No connection to the broker: no event can be published just now."""


class Publisher(Protocol):
    """Anything that publishes one event and returns only once the broker has it."""

    def publish(self, event: Event) -> None:
        """Publish ``event`` or raise ``PublishError``."""


class IdlePublisher(Publisher, Protocol):
    """A publisher whose connection needs servicing while the relay waits."""

    def keep_alive(self) -> None:
        """Answer heartbeats; called at least every half second while idle."""


def _insert_order(conn: Conn, customer: str, total_cents: int) -> int:
    row = conn.execute(
        "INSERT INTO orders (customer, total_cents) VALUES (%s, %s) RETURNING id",
        (customer, total_cents),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _order_placed(order_id: int, customer: str, total_cents: int) -> Event:
    payload = {"order_id": order_id, "customer": customer, "total_cents": total_cents}
    return Event(str(uuid.uuid4()), f"order-{order_id}", "order.placed", payload)


# --8<-- [start:dual-write]
def place_order_then_publish(
    conn: Conn, publisher: Publisher, customer: str, total_cents: int
) -> int:
    """Anti-pattern: commit, then publish. A crash in between loses the event."""
    with conn.transaction():
        order_id = _insert_order(conn, customer, total_cents)
    publisher.publish(_order_placed(order_id, customer, total_cents))
    return order_id


def publish_then_commit(
    conn: Conn, publisher: Publisher, customer: str, total_cents: int
) -> int:
    """Anti-pattern: publish, then commit. A crash or rollback after the publish
    leaves consumers acting on an order that does not exist."""
    with conn.transaction():
        order_id = _insert_order(conn, customer, total_cents)
        publisher.publish(_order_placed(order_id, customer, total_cents))
    return order_id


# --8<-- [end:dual-write]


# --8<-- [start:write]
def add_to_outbox(
    conn: Conn,
    aggregate_id: str,
    event_type: str,
    payload: dict[str, Any],
    *,
    channel: str = "outbox",
) -> None:
    """Write an event. Call it inside the transaction that makes the change.

    ``NOTIFY`` wakes the relays; PostgreSQL delivers it only if this commits.
    """
    conn.execute(
        "INSERT INTO outbox (aggregate_id, event_type, payload) VALUES (%s, %s, %s)",
        (aggregate_id, event_type, json.dumps(payload)),
    )
    conn.execute(sql.SQL("NOTIFY {}").format(sql.Identifier(channel)))


def place_order(
    conn: Conn, customer: str, total_cents: int, *, channel: str = "outbox"
) -> int:
    """Insert an order and its ``order.placed`` event in one transaction."""
    with conn.transaction():
        order_id = _insert_order(conn, customer, total_cents)
        payload = {
            "order_id": order_id,
            "customer": customer,
            "total_cents": total_cents,
        }
        add_to_outbox(
            conn, f"order-{order_id}", "order.placed", payload, channel=channel
        )
    return order_id


# --8<-- [end:write]


# --8<-- [start:claim]
CLAIMABLE = "published_at IS NULL AND parked_at IS NULL AND retry_at <= now()"

CLAIM_UNLOCKED = f"""
SELECT id, event_id, aggregate_id, event_type, payload, attempts FROM outbox
WHERE {CLAIMABLE}
ORDER BY id LIMIT %s
"""  # anti-pattern: two relays read, and publish, the same rows

CLAIM_SKIP_LOCKED = f"""
SELECT id, event_id, aggregate_id, event_type, payload, attempts FROM outbox
WHERE {CLAIMABLE}
ORDER BY id LIMIT %s
FOR UPDATE SKIP LOCKED
"""  # one relay per row, but two relays can reorder one aggregate's events

CLAIM_IN_ORDER = f"""
SELECT id, event_id, aggregate_id, event_type, payload, attempts FROM outbox AS o
WHERE {CLAIMABLE}
  AND NOT EXISTS (
    SELECT 1 FROM outbox AS earlier
    WHERE earlier.aggregate_id = o.aggregate_id
      AND earlier.published_at IS NULL
      AND earlier.id < o.id)
ORDER BY id LIMIT %s
FOR UPDATE SKIP LOCKED
"""  # only the oldest pending event of each aggregate: order holds across relays
# --8<-- [end:claim]


# --8<-- [start:relay]
def relay_once(
    conn: Conn,
    publisher: Publisher,
    *,
    batch_size: int = 100,
    claim: str = CLAIM_IN_ORDER,
    max_attempts: int = 5,
    backoff: float = 1.0,
) -> int:
    """Claim a batch, publish it in order, mark it published, commit.

    The row locks last until the commit, so another relay skips these rows. If
    the process dies after a publish and before the commit, the locks go with
    it and the event is published again: consumers must be idempotent.

    An event the broker refuses (unroutable, nacked) holds back only its own
    aggregate: it is retried after ``backoff`` seconds, doubled per attempt,
    and parked after ``max_attempts``; the other aggregates go on.

    Returns:
        The number of events published.

    Raises:
        BrokerUnavailable: After marking the events that the broker confirmed.
    """
    sent: list[int] = []
    held_back: set[str] = set()
    unavailable: BrokerUnavailable | None = None
    with conn.transaction():
        rows = conn.execute(claim, (batch_size,)).fetchall()
        for row_id, event_id, aggregate, event_type, payload, attempts in rows:
            if aggregate in held_back:
                continue  # an earlier event of this aggregate failed
            try:
                publisher.publish(Event(str(event_id), aggregate, event_type, payload))
            except BrokerUnavailable as error:
                unavailable = error  # not the event's fault: nothing is counted
                break
            except PublishError as error:
                held_back.add(aggregate)
                _record_failure(
                    conn, row_id, attempts + 1, max_attempts, backoff, error
                )
                continue
            sent.append(row_id)
        _mark_published(conn, sent)
    if unavailable is not None:
        raise unavailable
    return len(sent)


# --8<-- [end:relay]


# --8<-- [start:relay-failure]
def _mark_published(conn: Conn, ids: list[int]) -> None:
    if ids:
        conn.execute(
            "UPDATE outbox SET published_at = now() WHERE id = ANY(%s)", (ids,)
        )


def _record_failure(
    conn: Conn, row_id: int, attempts: int, limit: int, backoff: float, error: Exception
) -> None:
    park = attempts >= limit
    conn.execute(
        "UPDATE outbox SET attempts = %s, last_error = %s,"
        " retry_at = now() + make_interval(secs => %s),"
        " parked_at = CASE WHEN %s THEN now() END WHERE id = %s",
        (attempts, str(error), backoff * 2 ** (attempts - 1), park, row_id),
    )
    if park:
        log.error("outbox row %s parked after %s attempts: %s", row_id, attempts, error)
    else:
        log.warning("outbox row %s failed (attempt %s): %s", row_id, attempts, error)


# --8<-- [end:relay-failure]


# --8<-- [start:parked]
PARKED = """
SELECT id, aggregate_id, event_type, attempts, last_error, parked_at FROM outbox
WHERE parked_at IS NOT NULL AND published_at IS NULL
ORDER BY id
"""


def parked_events(conn: Conn) -> list[tuple[Any, ...]]:
    """Rows that gave up; each one holds back the later events of its aggregate.

    Alert when this is not empty (or export ``count(*)`` as a gauge).
    """
    return conn.execute(PARKED).fetchall()


def release_parked(conn: Conn, aggregate_id: str) -> int:
    """After fixing the cause, let an aggregate's parked event go again."""
    cursor = conn.execute(
        "UPDATE outbox SET parked_at = NULL, attempts = 0, retry_at = now()"
        " WHERE aggregate_id = %s AND parked_at IS NOT NULL"
        " AND published_at IS NULL",
        (aggregate_id,),
    )
    return cursor.rowcount


# --8<-- [end:parked]


# --8<-- [start:run-relay]
def run_relay(
    dsn: str,
    publisher: IdlePublisher,
    stop: threading.Event,
    *,
    channel: str = "outbox",
    batch_size: int = 100,
    poll_interval: float = 5.0,
    retry_delay: float = 1.0,
    max_attempts: int = 5,
) -> int:
    """Relay until ``stop`` is set; return the number of events published.

    ``NOTIFY`` wakes the relay as soon as an event commits. The poll every
    ``poll_interval`` seconds catches what a notification missed, for example
    one sent while the relay was reconnecting, and retries events in backoff.
    While it waits, the relay keeps the broker connection alive. A broker that
    cannot be reached is retried after ``retry_delay`` seconds; database errors
    propagate, so a supervisor restarts the relay.
    """
    published = 0
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        while not stop.is_set():
            try:
                count = relay_once(
                    conn, publisher, batch_size=batch_size, max_attempts=max_attempts
                )
            except BrokerUnavailable:
                log.exception("broker unavailable; the events stay in the outbox")
                stop.wait(retry_delay)
                continue
            published += count
            if count == 0:
                _wait_for_notify(conn, publisher, stop, poll_interval)
    return published


def _wait_for_notify(
    conn: Conn, publisher: IdlePublisher, stop: threading.Event, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
        for _ in conn.notifies(timeout=min(left, 0.5), stop_after=1):
            return
        publisher.keep_alive()  # heartbeats, or the broker drops the connection


# --8<-- [end:run-relay]


# --8<-- [start:publisher]
class RabbitPublisher:
    """Publish events to a RabbitMQ exchange and wait for each confirm.

    ``mandatory`` makes the broker return an event that no queue is bound for;
    without it the broker confirms the event and drops it, and the relay would
    mark it published. Connects on first use and again after a failure. The wait
    for a confirm ends when it arrives or the connection fails: heartbeats,
    ``timeout`` on the socket and on a broker that blocks publishers.
    """

    def __init__(
        self, url: str, exchange: str, *, timeout: float = 10.0, mandatory: bool = True
    ) -> None:
        self._params = pika.URLParameters(url)
        self._params.socket_timeout = timeout
        self._params.blocked_connection_timeout = timeout
        self._exchange, self._mandatory = exchange, mandatory
        self._connection: Any = None
        self._channel: Any = None

    def publish(self, event: Event) -> None:
        """Publish ``event``; return once the broker confirmed it."""
        properties = pika.BasicProperties(
            message_id=event.event_id,
            type=event.event_type,
            content_type="application/json",
            delivery_mode=pika.DeliveryMode.Persistent,
            headers={"aggregate_id": event.aggregate_id},
        )
        body = json.dumps(event.payload).encode()
        try:
            if self._channel is None:
                self._connection = pika.BlockingConnection(self._params)
                self._channel = self._connection.channel()
                self._channel.confirm_delivery()
            self._channel.basic_publish(
                self._exchange, event.event_type, body, properties, self._mandatory
            )
        except (UnroutableError, NackError) as error:  # the channel stays usable
            raise PublishError(f"{event.event_id}: {error!r}") from error
        except AMQPError as error:  # no connection, or it broke: start over
            self.close()
            raise BrokerUnavailable(f"{event.event_id}: {error!r}") from error

    def keep_alive(self) -> None:
        """Send and answer heartbeats on an idle connection.

        pika's ``BlockingConnection`` only does so inside its own calls; a
        connection nobody calls misses heartbeats and the broker closes it.
        """
        if self._connection is None:
            return
        try:
            self._connection.process_data_events(time_limit=0)
        except AMQPError:
            log.warning("the broker connection broke while idle", exc_info=True)
            self.close()  # the next publish reconnects

    # --8<-- [end:publisher]

    def close(self) -> None:
        """Close the connection; the next ``publish`` opens a new one."""
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except AMQPError:
                log.warning("closing the broker connection failed", exc_info=True)

    def __enter__(self) -> RabbitPublisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
