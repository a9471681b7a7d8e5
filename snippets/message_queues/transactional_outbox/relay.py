"""The relay: claim pending rows, publish them, mark them, in one transaction."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import psycopg
from psycopg import sql

from snippets.message_queues.transactional_outbox.outbox import Conn, Event
from snippets.message_queues.transactional_outbox.publisher import (
    BrokerUnavailable,
    IdlePublisher,
    Publisher,
    PublishError,
)

__all__ = [
    "CLAIMABLE",
    "CLAIM_IN_ORDER",
    "CLAIM_SKIP_LOCKED",
    "CLAIM_UNLOCKED",
    "PARKED",
    "parked_events",
    "relay_once",
    "release_parked",
    "run_relay",
]

log = logging.getLogger(__name__)


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
