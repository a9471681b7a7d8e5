"""The durable inbox: one SQLite row per delivery, claimed with a lease."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SCHEMA", "Delivery", "Handler", "Inbox"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery, as a handler receives it.

    Attributes:
        delivery_id: The provider's id for the event (`webhook-id`). It stays
            the same on every retry, so it is the idempotency key.
        body: The raw request body, exactly as it was signed.
        attempt: 1 the first time a worker runs this delivery, 2 after one
            failure or lost lease, and so on.
    """

    delivery_id: str
    body: bytes
    attempt: int = 1


Handler = Callable[[Delivery], None]


# --8<-- [start:schema]
SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (
    seq         INTEGER PRIMARY KEY,        -- arrival order
    delivery_id TEXT    NOT NULL UNIQUE,    -- webhook-id: the dedupe key
    body        BLOB    NOT NULL,           -- raw bytes, as signed
    received_at REAL    NOT NULL,
    state       TEXT    NOT NULL DEFAULT 'pending',  -- pending, done, dead
    attempts    INTEGER NOT NULL DEFAULT 0,
    not_before  REAL    NOT NULL DEFAULT 0, -- lease end, or next retry
    last_error  TEXT
);
CREATE INDEX IF NOT EXISTS inbox_ready ON inbox (state, not_before);
"""
# --8<-- [end:schema]


class Inbox:
    """Webhook deliveries stored durably in one SQLite file.

    Every method opens its own short-lived connection, so request threads and
    workers never share one.

    Args:
        path: The database file. The inbox creates its table if needed.
        busy_timeout: Seconds a write waits for another writer's lock. Keep it
            well inside the provider's response deadline.
    """

    def __init__(self, path: str | Path, *, busy_timeout: float = 2.0) -> None:
        self.path = str(path)
        self.busy_timeout = busy_timeout
        self.arrived = threading.Event()  # wakes workers early; polling is the floor
        with closing(self.connect()) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)

    # --8<-- [start:inbox]
    def connect(self) -> sqlite3.Connection:
        """A connection in autocommit mode: each statement commits on return."""
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None
        )
        conn.execute("PRAGMA synchronous=FULL")  # sync the WAL on every commit
        return conn

    def add(self, delivery_id: str, body: bytes) -> bool:
        """Store a delivery durably. Returns False if it was already stored."""
        with closing(self.connect()) as conn:
            cursor = conn.execute(
                "INSERT INTO inbox (delivery_id, body, received_at) VALUES (?, ?, ?)"
                " ON CONFLICT (delivery_id) DO NOTHING",
                (delivery_id, body, time.time()),
            )
        self.arrived.set()
        return cursor.rowcount == 1

    # --8<-- [end:inbox]

    # --8<-- [start:claim]
    def claim(self, lease: float, *, max_attempts: int = 5) -> Delivery | None:
        """Take the oldest ready delivery for `lease` seconds, or return None.

        A delivery claimed more than `max_attempts` times is buried instead:
        its worker died every time (out of memory, a segfault, SIGKILL), so
        nothing ever called `release` to count the failure.
        """
        while True:
            now = time.time()
            with closing(self.connect()) as conn:
                rows = conn.execute(
                    """
                    UPDATE inbox SET attempts = attempts + 1, not_before = :until,
                        state = CASE WHEN attempts >= :max THEN 'dead'
                                     ELSE state END,
                        last_error = CASE WHEN attempts >= :max
                                          THEN 'no outcome after every claim'
                                          ELSE last_error END
                    WHERE seq = (SELECT seq FROM inbox
                                 WHERE state = 'pending' AND not_before <= :now
                                 ORDER BY seq LIMIT 1)
                    RETURNING delivery_id, body, attempts, state
                    """,
                    {"now": now, "until": now + lease, "max": max_attempts},
                ).fetchall()
            if not rows:
                return None
            delivery_id, body, attempts, state = rows[0]
            if state == "pending":
                return Delivery(delivery_id, body, attempts)
            log.error("delivery %s buried: claimed %d times", delivery_id, attempts)

    # --8<-- [end:claim]

    # --8<-- [start:complete]
    def complete(self, delivery: Delivery) -> bool:
        """Mark a claimed delivery done. False if its lease was lost meanwhile.

        `attempts` doubles as a fencing token: a worker whose lease expired and
        whose delivery was claimed again no longer matches it.
        """
        with closing(self.connect()) as conn:
            cursor = conn.execute(
                "UPDATE inbox SET state = 'done', last_error = NULL"
                " WHERE delivery_id = ? AND attempts = ? AND state = 'pending'",
                (delivery.delivery_id, delivery.attempt),
            )
        return cursor.rowcount == 1

    def release(
        self, delivery: Delivery, error: str, *, retry_in: float, max_attempts: int
    ) -> None:
        """Give a failed delivery back for a later retry, or bury it as dead."""
        with closing(self.connect()) as conn:
            conn.execute(
                """
                UPDATE inbox SET not_before = :at, last_error = :error,
                    state = CASE WHEN attempts >= :max THEN 'dead' ELSE 'pending' END
                WHERE delivery_id = :id AND attempts = :attempt AND state = 'pending'
                """,
                {
                    "at": time.time() + retry_in,
                    "error": error,
                    "max": max_attempts,
                    "id": delivery.delivery_id,
                    "attempt": delivery.attempt,
                },
            )

    # --8<-- [end:complete]

    def count(self, state: str) -> int:
        """How many deliveries are in `state` (pending, done or dead)."""
        with closing(self.connect()) as conn:
            row = conn.execute(
                "SELECT count(*) FROM inbox WHERE state = ?", (state,)
            ).fetchone()
        return int(row[0])

    def prune(self, older_than: float) -> int:
        """Delete done deliveries received more than `older_than` seconds ago.

        Keep them at least as long as the provider may send the same id again,
        manual redeliveries included: a pruned id is no longer a duplicate.
        """
        with closing(self.connect()) as conn:
            cursor = conn.execute(
                "DELETE FROM inbox WHERE state = 'done' AND received_at < ?",
                (time.time() - older_than,),
            )
        return cursor.rowcount
