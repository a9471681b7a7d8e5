"""The callback outbox relay: sends the callbacks the jobs table owes.

A worker commits a job's result and its callback row in one transaction; the
relay claims due rows with a lease, sends them signed, and records the outcome.
A crash at any point leaves the row for the next relay.
"""

from __future__ import annotations

import http.client
import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing

from snippets.webhook_design.async_request_reply.transport import request
from snippets.webhook_design.verify_then_dedupe import signature_headers

__all__ = ["CallbackRelay"]

log = logging.getLogger(__name__)


class CallbackRelay:
    """Delivers the rows of the ``callbacks`` table, on a thread of its own.

    Args:
        connect: Opens a connection to the job database (autocommit).
        secret: Signs each callback (``whsec_...``), Standard Webhooks style.
        attempts: Deliveries tried per callback before it is ``failed``.
        timeout: Seconds per attempt.
        retry: Seconds before the second attempt; doubles after each.
        changed: Notified after every attempt (`JobService.drain` waits on it).
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        secret: str,
        *,
        attempts: int,
        timeout: float,
        retry: float,
        changed: threading.Condition,
    ) -> None:
        self._connect, self._secret = connect, secret
        self._attempts, self._timeout, self._retry = attempts, timeout, retry
        self._changed = changed
        self.counts: Counter[str] = Counter()  # delivered / failed
        self.wake = threading.Event()  # set after a callback row is committed

    # --8<-- [start:notify]
    def deliver_one(self) -> bool:
        """Claim one due callback with a lease, send it, record the outcome.

        Returns False when no callback is due.
        """
        now = time.time()
        with closing(self._connect()) as conn:
            row = conn.execute(
                "UPDATE callbacks SET attempts = attempts + 1, not_before = ?"
                " WHERE job_id = (SELECT job_id FROM callbacks"
                "  WHERE state = 'pending' AND not_before <= ?"
                "  ORDER BY not_before LIMIT 1)"
                " RETURNING job_id, webhook_id, url, body, attempts",
                (now + 2 * self._timeout, now),  # the lease: two attempts' time
            ).fetchone()
        if row is None:
            return False
        job_id, webhook_id, url, body, attempts = row
        status = self._post(url, webhook_id, body)
        refused = 400 <= status < 500 and status not in (408, 429)
        if 200 <= status < 300:
            state = "delivered"
        elif refused or attempts >= self._attempts:
            state = "failed"
            log.warning("callback for job %s not delivered to %s", job_id, url)
        else:  # endpoint down or too slow: try again later
            state = "pending"
        with closing(self._connect()) as conn:
            conn.execute(
                "UPDATE callbacks SET state = ?, not_before = ?"
                " WHERE job_id = ? AND attempts = ?",  # still our claim
                (state, now + self._retry * 2 ** (attempts - 1), job_id, attempts),
            )
        with self._changed:
            if state != "pending":
                self.counts[state] += 1
            self._changed.notify_all()
        return True

    # --8<-- [end:notify]

    # --8<-- [start:post]
    def _post(self, url: str, webhook_id: str, body: bytes) -> int:
        """One signed attempt; the status code, or 0 if none came back."""
        signed = signature_headers([self._secret], webhook_id, int(time.time()), body)
        headers = {"Content-Type": "application/json", **signed}
        try:
            return request(
                "POST", url, body=body, headers=headers, timeout=self._timeout
            ).status
        except (OSError, http.client.HTTPException):
            return 0

    # --8<-- [end:post]

    def run(self, stop: threading.Event) -> None:
        """Deliver until ``stop`` is set; sleep until the next row is due."""
        while not stop.is_set():
            self.wake.clear()  # a commit after this wakes the wait below
            try:
                if self.deliver_one():
                    continue
                delay = self._next_in()
            except sqlite3.Error:
                log.exception("callback outbox unavailable; retrying")
                delay = 1.0
            self.wake.wait(delay)

    def _next_in(self, longest: float = 1.0) -> float:
        with closing(self._connect()) as conn:
            (due,) = conn.execute(
                "SELECT min(not_before) FROM callbacks WHERE state = 'pending'"
            ).fetchone()
        return longest if due is None else min(longest, max(0.0, due - time.time()))

    def pending(self) -> bool:
        """Whether any callback is still to be delivered."""
        with closing(self._connect()) as conn:
            row = conn.execute(
                "SELECT 1 FROM callbacks WHERE state = 'pending' LIMIT 1"
            ).fetchone()
        return row is not None
