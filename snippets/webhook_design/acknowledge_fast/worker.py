"""The background worker: claim a delivery, run the handler, mark it done."""

from __future__ import annotations

import logging
import sqlite3
import threading

from snippets.webhook_design.acknowledge_fast.inbox import Handler, Inbox

__all__ = ["InboxWorker"]

log = logging.getLogger(__name__)


class InboxWorker:
    """Drains an inbox in a background thread: claim, handle, complete.

    Args:
        inbox: Where the deliveries are.
        handler: Your processing. It runs outside any transaction and must be
            idempotent: a crash after it returns and before `complete` runs
            it again after the lease expires.
        lease: Seconds a claim lasts; longer than the handler ever takes.
        poll: Seconds between looks at the inbox when nothing wakes the worker.
        retry_in: The first retry delay after a failure; it doubles per attempt.
        max_attempts: After this many failed attempts a delivery is dead;
            one that was claimed this many times without an outcome (its
            worker died) is buried on the next claim.
    """

    def __init__(
        self,
        inbox: Inbox,
        handler: Handler,
        *,
        lease: float = 30.0,
        poll: float = 1.0,
        retry_in: float = 5.0,
        max_attempts: int = 5,
    ) -> None:
        self.inbox, self.handler = inbox, handler
        self.lease, self.poll = lease, poll
        self.retry_in, self.max_attempts = retry_in, max_attempts
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inbox-worker")

    # --8<-- [start:worker]
    def run_once(self) -> bool:
        """Process one ready delivery. Returns False if none was ready."""
        delivery = self.inbox.claim(self.lease, max_attempts=self.max_attempts)
        if delivery is None:
            return False
        try:
            self.handler(delivery)
        except Exception as error:
            log.exception("delivery %s failed", delivery.delivery_id)
            delay = self.retry_in * 2 ** (delivery.attempt - 1)
            self.inbox.release(
                delivery, repr(error), retry_in=delay, max_attempts=self.max_attempts
            )
        else:
            if not self.inbox.complete(delivery):
                log.warning("lease on %s was lost", delivery.delivery_id)
        return True

    def _run(self) -> None:
        while True:
            self.inbox.arrived.clear()  # anything added after this wakes us
            if self._stop.is_set():
                return
            try:
                busy = self.run_once()
            except sqlite3.Error:
                log.exception("inbox unavailable; retrying")
                busy = False
            if not busy:
                self.inbox.arrived.wait(self.poll)

    # --8<-- [end:worker]

    def start(self) -> None:
        """Start the worker thread."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Finish the current delivery and stop. Returns False on timeout."""
        self._stop.set()
        self.inbox.arrived.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()
