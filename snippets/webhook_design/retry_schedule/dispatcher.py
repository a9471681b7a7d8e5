"""The delivery ledger in SQLite and the dispatcher that sends what is due."""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
import uuid
from dataclasses import dataclass

from snippets.webhook_design.retry_schedule.attempt import Response, post
from snippets.webhook_design.retry_schedule.clock import Clock, SystemClock
from snippets.webhook_design.retry_schedule.policy import (
    Outcome,
    RetryPolicy,
    classify,
    parse_retry_after,
)
from snippets.webhook_design.verify_then_dedupe import parse_secret, signature_headers

__all__ = ["SCHEMA", "Claim", "RetryDispatcher"]

log = logging.getLogger(__name__)


# --8<-- [start:ledger]
SCHEMA = """
CREATE TABLE IF NOT EXISTS delivery (
    id              INTEGER PRIMARY KEY,
    webhook_id      TEXT NOT NULL,
    url             TEXT NOT NULL,
    body            BLOB NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL,
    last_result     TEXT,
    lease_owner     TEXT,              -- the dispatcher sending it now
    lease_until     REAL,              -- after this, another may take it
    UNIQUE (webhook_id, url)
);
CREATE INDEX IF NOT EXISTS delivery_due
    ON delivery (next_attempt_at) WHERE state = 'pending';
CREATE TABLE IF NOT EXISTS attempt (
    delivery_id INTEGER NOT NULL REFERENCES delivery (id),
    number      INTEGER NOT NULL,
    at          REAL NOT NULL,
    result      TEXT NOT NULL,
    PRIMARY KEY (delivery_id, number)
);
CREATE TABLE IF NOT EXISTS disabled_endpoint (url TEXT PRIMARY KEY, at REAL NOT NULL);
"""
# --8<-- [end:ledger]


@dataclass(frozen=True)
class Claim:
    """One due delivery, leased to one dispatcher for one attempt."""

    delivery_id: int
    webhook_id: str
    url: str
    body: bytes
    attempts: int  # attempts made before this one


class RetryDispatcher:
    """Send webhooks from a SQLite ledger, retrying on a jittered schedule.

    A delivery is one event for one endpoint URL. Its state is ``pending``
    until it ends ``delivered``, ``failed`` (a permanent status, or out of
    attempts) or ``disabled`` (the endpoint answered 410 Gone). The schedule
    is stored as wall-clock times, so a restarted dispatcher carries on where
    it stopped. Several dispatchers, each with its own connection to the same
    ledger file, share the work: each attempt is leased to one of them first.

    Args:
        db: The ledger; the schema is created if missing.
        policy: The retry schedule; Standard Webhooks' example by default.
        clock: `SystemClock` by default; `VirtualClock` in simulations.
        rng: The source of jitter; pass ``random.Random(seed)`` to repeat a run.
        timeout: Seconds per socket operation. Standard Webhooks recommends 15
            to 30.
        secret: A ``whsec_...`` key: each attempt is then signed the Standard
            Webhooks way, with the attempt's own timestamp.
        lease: Seconds a claimed attempt stays reserved; after that, another
            dispatcher may take it. Make it longer than any attempt can run
            (``4 * timeout`` by default).
    """

    def __init__(
        self,
        db: sqlite3.Connection,
        policy: RetryPolicy | None = None,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        timeout: float = 15.0,
        secret: str | None = None,
        lease: float | None = None,
    ) -> None:
        self._db = db
        self._policy = policy or RetryPolicy()
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._timeout = timeout
        self._lease = 4 * timeout if lease is None else lease
        self._owner = uuid.uuid4().hex  # this dispatcher's name in the ledger
        if secret is not None:
            parse_secret(secret)  # a malformed secret fails here, not per attempt
        self._secret = secret
        db.executescript(SCHEMA)

    # --8<-- [start:enqueue]
    def enqueue(self, url: str, body: bytes, webhook_id: str | None = None) -> str:
        """Store a delivery, due at once; return its ``webhook-id``.

        The id stays the same on every retry, so receivers can deduplicate.
        """
        webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
        with self._db:
            disabled = self._db.execute(
                "SELECT 1 FROM disabled_endpoint WHERE url = ?", (url,)
            ).fetchone()
            self._db.execute(
                "INSERT INTO delivery (webhook_id, url, body, state, next_attempt_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (webhook_id, url, body, "disabled" if disabled else "pending",
                 None if disabled else self._clock.now()),
            )  # fmt: skip
        return webhook_id

    # --8<-- [end:enqueue]

    # --8<-- [start:claim]
    def claim(self) -> Claim | None:
        """Lease the oldest due delivery that nobody holds, or return ``None``.

        ``BEGIN IMMEDIATE`` takes SQLite's write lock before the read, so two
        dispatchers cannot pick the same row. A lease that ran out (its
        dispatcher died mid-attempt) is up for grabs again.
        """
        now = self._clock.now()
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute(
                "SELECT id, webhook_id, url, body, attempts FROM delivery"
                " WHERE state = 'pending' AND next_attempt_at <= ?"
                " AND (lease_until IS NULL OR lease_until <= ?)"
                " ORDER BY next_attempt_at, id LIMIT 1",
                (now, now),
            ).fetchone()
            if row is None:
                return None
            self._db.execute(
                "UPDATE delivery SET lease_owner = ?, lease_until = ? WHERE id = ?",
                (self._owner, now + self._lease, row[0]),
            )
        return Claim(*row)

    # --8<-- [end:claim]

    # --8<-- [start:attempt]
    def deliver(self, claim: Claim) -> Outcome | None:
        """Make one attempt and record it; ``None`` if the lease was lost.

        The ledger is only written while this dispatcher still holds the
        lease, so a late result cannot overwrite a newer attempt's.
        """
        number, sent_at = claim.attempts + 1, self._clock.now()
        headers = self._headers(claim.webhook_id, sent_at, claim.body)
        response = post(claim.url, claim.body, headers, self._timeout)
        outcome = classify(response.status, self._policy.permanent)
        state, next_at = self._next(outcome, number, response)
        with self._db:  # one transaction: the attempt and the new schedule
            kept = self._db.execute(
                "UPDATE delivery SET state = ?, attempts = ?, next_attempt_at = ?,"
                " last_result = ?, lease_owner = NULL, lease_until = NULL"
                " WHERE id = ? AND lease_owner = ? AND state = 'pending'",
                (state, number, next_at, response.summary, claim.delivery_id,
                 self._owner),
            ).rowcount  # fmt: skip
            if not kept:
                log.warning("lease lost for %s; result dropped", claim.webhook_id)
                return None
            self._db.execute(
                "INSERT INTO attempt VALUES (?, ?, ?, ?)",
                (claim.delivery_id, number, sent_at, response.summary),
            )
            if outcome is Outcome.GONE:
                self._disable(claim.url)
        return outcome

    def _disable(self, url: str) -> None:
        """410 Gone: park every other pending delivery to this URL."""
        self._db.execute(
            "INSERT OR IGNORE INTO disabled_endpoint VALUES (?, ?)",
            (url, self._clock.now()),
        )
        self._db.execute(
            "UPDATE delivery SET state = 'disabled', next_attempt_at = NULL,"
            " lease_owner = NULL, lease_until = NULL"
            " WHERE url = ? AND state = 'pending'",
            (url,),
        )

    # --8<-- [end:attempt]

    # --8<-- [start:next]
    def _next(
        self, outcome: Outcome, number: int, response: Response
    ) -> tuple[str, float | None]:
        """The delivery's new state and, if it stays pending, its next time."""
        if outcome is not Outcome.RETRY:
            return {
                Outcome.DELIVERED: "delivered",
                Outcome.REJECTED: "failed",
                Outcome.GONE: "disabled",
            }[outcome], None
        now = self._clock.now()
        hint = parse_retry_after(response.retry_after, now)
        wait = self._policy.delay(number, self._rng, hint)
        return ("failed", None) if wait is None else ("pending", now + wait)

    # --8<-- [end:next]

    def _headers(self, webhook_id: str, sent_at: float, body: bytes) -> dict[str, str]:
        timestamp = int(sent_at)  # each attempt carries its own time
        if self._secret is None:
            return {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp)}
        return signature_headers([self._secret], webhook_id, timestamp, body)

    # --8<-- [start:run]
    def run_due(self, limit: int = 100, stop: threading.Event | None = None) -> int:
        """Claim and attempt due deliveries, one at a time; return how many.

        Stops after ``limit`` attempts, when nothing is due, or when ``stop``
        is set.
        """
        attempted = 0
        while attempted < limit and not (stop is not None and stop.is_set()):
            claim = self.claim()
            if claim is None:
                break
            self.deliver(claim)
            attempted += 1
        return attempted

    def run(
        self, stop: threading.Event, *, until_idle: bool = False, max_wait: float = 1.0
    ) -> None:
        """Send due deliveries until ``stop`` is set.

        Args:
            stop: Set it to shut down; a wait in progress ends at once.
            until_idle: Return when no delivery is pending.
            max_wait: The longest sleep between checks, so that deliveries
                enqueued or released by another dispatcher are picked up.
        """
        while not stop.is_set():
            self.run_due(stop=stop)
            (due,) = self._db.execute(  # a leased row is due when its lease ends
                "SELECT min(max(next_attempt_at, coalesce(lease_until, 0)))"
                " FROM delivery WHERE state = 'pending'"
            ).fetchone()
            if due is None and until_idle:
                return
            wait = max_wait if due is None else due - self._clock.now()
            if self._clock.wait(min(wait, max_wait), stop):
                return

    # --8<-- [end:run]
