"""The saga's tables, and the statements its command relay runs."""

from __future__ import annotations

import psycopg

__all__ = [
    "DUE_COMMAND",
    "MARK_FAILED",
    "MARK_REFUSED",
    "MARK_SENT",
    "SCHEMA",
    "create_schema",
]

# --8<-- [start:schema]
SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    sku       text PRIMARY KEY,
    stock     integer NOT NULL,
    locked_by uuid                    -- semantic lock: the saga using the item
);
CREATE TABLE IF NOT EXISTS sagas (
    id         uuid PRIMARY KEY,
    sku        text NOT NULL REFERENCES items,
    quantity   integer NOT NULL,
    state      text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS timers (  -- one payment deadline per saga
    saga_id  uuid PRIMARY KEY REFERENCES sagas,
    due_at   timestamptz NOT NULL,
    fired_at timestamptz
);
CREATE TABLE IF NOT EXISTS inbox (   -- webhook ids already applied
    provider    text NOT NULL,       -- ids are unique per provider only
    webhook_id  text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, webhook_id)
);
CREATE TABLE IF NOT EXISTS outbox (  -- commands for the providers
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    saga_id      uuid  NOT NULL,
    command      text  NOT NULL,
    payload      jsonb NOT NULL,
    state        text  NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'sent', 'refused', 'parked')),
    attempts     integer NOT NULL DEFAULT 0,
    next_attempt timestamptz NOT NULL DEFAULT now(),
    last_error   text,
    published_at timestamptz
);
CREATE TABLE IF NOT EXISTS saga_log (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    saga_id uuid NOT NULL,
    event   text NOT NULL,
    outcome text NOT NULL
);
"""
# --8<-- [end:schema]

# --8<-- [start:relay-sql]
DUE_COMMAND = """
SELECT id, saga_id, command, payload FROM outbox o
WHERE state = 'pending' AND next_attempt <= now() AND id <> ALL(%s)
  AND NOT EXISTS (SELECT 1 FROM outbox older  -- a saga's commands in order
                  WHERE older.saga_id = o.saga_id AND older.state = 'pending'
                    AND older.id < o.id)
ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
"""
MARK_SENT = """
UPDATE outbox SET state = 'sent', attempts = attempts + 1, published_at = now()
WHERE id = %s
"""
MARK_REFUSED = """
UPDATE outbox SET state = 'refused', attempts = attempts + 1, last_error = %s
WHERE id = %s
"""
MARK_FAILED = """
UPDATE outbox SET attempts = attempts + 1, last_error = %s,
    next_attempt = now() + make_interval(secs => %s * 2 ^ attempts),
    state = CASE WHEN attempts + 1 >= %s THEN 'parked' ELSE 'pending' END
WHERE id = %s RETURNING state
"""
# --8<-- [end:relay-sql]


def create_schema(dsn: str) -> None:
    """Create the tables if they do not exist."""
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        conn.execute(SCHEMA)
