"""The outbox table, and writing an event in the transaction that makes the change."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

__all__ = [
    "SCHEMA",
    "Conn",
    "Event",
    "add_to_outbox",
    "create_schema",
    "insert_order",
    "place_order",
]

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


def insert_order(conn: Conn, customer: str, total_cents: int) -> int:
    """Insert an order; return its id. Call it inside a transaction."""
    row = conn.execute(
        "INSERT INTO orders (customer, total_cents) VALUES (%s, %s) RETURNING id",
        (customer, total_cents),
    ).fetchone()
    assert row is not None
    return int(row[0])


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
        order_id = insert_order(conn, customer, total_cents)
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
