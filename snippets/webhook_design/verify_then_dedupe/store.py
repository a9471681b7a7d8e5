"""The replay guard: claim each ``webhook-id`` in the effect's transaction."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from snippets.webhook_design.verify_then_dedupe.verifier import Delivery

__all__ = ["SCHEMA", "DeliveryStore", "Effect", "Parked"]

log = logging.getLogger(__name__)


Effect = Callable[[sqlite3.Connection, Delivery], str]
"""Applies one new delivery inside the claim's transaction; returns an outcome.

Raise `ValueError` for a payload that can never be applied (it does not
parse, or lacks what the effect needs): the delivery is then parked.
"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    msg_id      TEXT PRIMARY KEY,
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS parked_deliveries (
    msg_id      TEXT PRIMARY KEY REFERENCES webhook_deliveries (msg_id),
    received_at REAL NOT NULL,
    body        BLOB NOT NULL,
    reason      TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Parked:
    """An authentic delivery that its effect could not apply, kept for a human."""

    msg_id: str
    received_at: float
    body: bytes
    reason: str


class DeliveryStore:
    """The replay guard: one SQLite row per ``webhook-id`` ever accepted.

    Args:
        path: The database file; created with the table if missing.
        busy_timeout: Seconds a writer waits for another writer's lock.
        clock: Returns the current Unix time, stored as ``received_at``.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = str(path)
        self._busy_timeout = busy_timeout
        self._clock = clock
        with closing(self.connect()) as conn:
            conn.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            conn.executescript(SCHEMA)

    def connect(self) -> sqlite3.Connection:
        """A new connection in autocommit mode; transactions are explicit."""
        return sqlite3.connect(
            self.path, timeout=self._busy_timeout, isolation_level=None
        )

    # --8<-- [start:claim]
    def accept(self, delivery: Delivery, effect: Effect) -> str:
        """Claim the delivery's id and apply its effect, in one transaction.

        Returns:
            ``"duplicate"`` if the id was claimed before; ``"parked"`` if
            ``effect`` raised `ValueError`; otherwise what ``effect`` returns.
            If ``effect`` raises anything else, the claim is rolled back with
            it, so the provider's retry is applied.
        """
        with closing(self.connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")  # one writer at a time
            try:
                claimed = conn.execute(
                    "INSERT INTO webhook_deliveries (msg_id, received_at)"
                    " VALUES (?, ?) ON CONFLICT (msg_id) DO NOTHING",
                    (delivery.msg_id, self._clock()),
                ).rowcount  # 1: this copy is first; 0: seen before
                outcome = (
                    self._apply(conn, delivery, effect) if claimed else "duplicate"
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return outcome

    # --8<-- [end:claim]

    # --8<-- [start:park]
    def _apply(
        self, conn: sqlite3.Connection, delivery: Delivery, effect: Effect
    ) -> str:
        """Run the effect; park a delivery whose payload it cannot apply."""
        conn.execute("SAVEPOINT effect")
        try:
            outcome = effect(conn, delivery)
        except ValueError as error:  # signed, so retrying sends the same bytes
            conn.execute("ROLLBACK TO effect")  # undo the effect, keep the claim
            conn.execute(
                "INSERT INTO parked_deliveries VALUES (?, ?, ?, ?)",
                (delivery.msg_id, self._clock(), delivery.body, repr(error)),
            )
            log.warning("parked delivery %s: %r", delivery.msg_id, error)
            outcome = "parked"
        conn.execute("RELEASE effect")
        return outcome

    def parked(self) -> list[Parked]:
        """Every parked delivery, oldest first: alert on them, fix, replay."""
        with closing(self.connect()) as conn:
            rows = conn.execute(
                "SELECT msg_id, received_at, body, reason FROM parked_deliveries"
                " ORDER BY received_at, msg_id"
            ).fetchall()
        return [Parked(*row) for row in rows]

    # --8<-- [end:park]

    # --8<-- [start:prune]
    def prune(self, older_than: float) -> int:
        """Forget ids received before ``older_than`` (Unix time); return how many.

        Keep ids for at least the timestamp tolerance (replays) and for the
        provider's whole retry window (retries reuse the ``webhook-id``).
        """
        with closing(self.connect()) as conn:
            return conn.execute(
                "DELETE FROM webhook_deliveries WHERE received_at < ?", (older_than,)
            ).rowcount

    # --8<-- [end:prune]
