"""Campaign for a lease, renew it, and step down on the leader's own clock.

The leader renews well before the lease expires and steps down when it cannot
renew in time. A watchdog, not the renewal loop, enforces the renew deadline,
so a renewal that hangs on a dead network cannot keep a leader leading.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

import psycopg

from .lease import Conn, Lease, connect, release, renew, try_acquire

__all__ = [
    "JITTER",
    "LeaderElector",
    "Timing",
]

log = logging.getLogger(__name__)

JITTER: Final = 1.2  # campaign retries wait retry_period x [1, 1.2], as client-go


# --8<-- [start:timing]
@dataclass(frozen=True)
class Timing:
    """How long a lease lasts and how the leader keeps it, in seconds.

    The defaults are the Kubernetes control plane's: lease 15 s, renew deadline
    10 s, retry period 2 s.

    Attributes:
        lease_duration: How long a lease lasts after each renewal, by the
            database clock. Followers take over only after it has passed.
        renew_deadline: How long the leader keeps trying to renew before it
            steps down. It must be shorter than the lease, so that the leader
            stops acting before anyone else can start.
        retry_period: The pause between renewals, and between campaign tries.
    """

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.renew_deadline > self.retry_period * JITTER > 0:
            raise ValueError("renew_deadline must exceed retry_period x 1.2")
        if not self.lease_duration > self.renew_deadline + self.retry_period:
            raise ValueError("lease_duration must exceed renew_deadline + retry_period")

    @property
    def ttl(self) -> timedelta:
        """The lease duration as an interval for SQL."""
        return timedelta(seconds=self.lease_duration)


# --8<-- [end:timing]


class _Deadline:
    """A monotonic-clock deadline that one thread extends and another watches."""

    def __init__(self, at: float) -> None:
        self._at = at
        self._lock = threading.Lock()

    def extend(self, at: float) -> None:
        with self._lock:
            self._at = max(self._at, at)

    def left(self) -> float:
        with self._lock:
            return max(0.0, self._at - time.monotonic())


class LeaderElector:
    """Campaign for one lease and run a callback while holding it.

    Args:
        dsn: Where the ``leases`` table lives.
        lease: The lease's name.
        identity: This replica's identity; unique per process (a pod name plus
            a random suffix), never reused after a restart.
        timing: Lease duration, renew deadline and retry period.
    """

    def __init__(
        self, dsn: str, *, lease: str, identity: str, timing: Timing | None = None
    ) -> None:
        self.dsn = dsn
        self.lease = lease
        self.identity = identity
        self.timing = timing or Timing()
        self._conn: Conn | None = None
        self._interrupted = False  # the watchdog shut the lease socket down

    # --8<-- [start:run]
    def run(
        self, lead: Callable[[Lease, threading.Event], None], stop: threading.Event
    ) -> None:
        """Campaign until ``stop`` is set; call ``lead(lease, lost)`` while leading.

        ``lead`` runs in the calling thread while a background thread renews the
        lease. ``lost`` is set when renewal was refused, when the renew deadline
        passed without a successful renewal, or when ``stop`` was set: ``lead``
        must then return promptly. When ``lead`` returns, the lease is released
        and, unless ``stop`` is set, the replica campaigns again.
        """
        try:
            while (term := self._campaign(stop)) is not None:
                lease, acquired_at = term
                lost = threading.Event()
                renewer = threading.Thread(
                    target=self._keep_renewing,
                    args=(lease, acquired_at, lost, stop),
                    name=f"renew-{lease.name}",
                    daemon=True,
                )
                renewer.start()
                try:
                    lead(lease, lost)
                finally:
                    lost.set()
                    renewer.join()
                    self._release(lease)
        finally:
            if self._conn is not None:
                self._conn.close()

    # --8<-- [end:run]

    def _lease_conn(self) -> Conn:
        """The connection for lease statements, reopened after a failure."""
        conn = self._conn
        if conn is None or conn.closed or conn.broken or self._interrupted:
            self._interrupted = False
            if conn is not None:
                conn.close()
            retry = self.timing.retry_period
            conn = connect(self.dsn, statement_timeout=retry, io_timeout=retry)
            self._conn = conn
        return conn

    def _campaign(self, stop: threading.Event) -> tuple[Lease, float] | None:
        """Try to acquire every retry period; return the lease and when we asked."""
        retry = self.timing.retry_period
        while not stop.is_set():
            asked_at = time.monotonic()
            try:
                lease = try_acquire(
                    self._lease_conn(), self.lease, self.identity, self.timing.ttl
                )
            except psycopg.Error as error:
                log.warning("%s: campaign failed: %s", self.identity, error)
                lease = None
            if lease is not None:
                log.info("%s: leading with token %d", self.identity, lease.token)
                return lease, asked_at
            stop.wait(random.uniform(retry, retry * JITTER))
        return None

    # --8<-- [start:renew]
    def _keep_renewing(
        self,
        lease: Lease,
        renewed_at: float,
        lost: threading.Event,
        stop: threading.Event,
    ) -> None:
        """Renew every retry period; set ``lost`` once leadership can't be trusted.

        ``renewed_at`` is read *before* each renew statement is sent: the
        database computes the new expiry later than that, so the local view of
        the deadline errs on the safe side. The deadline is enforced by a
        watchdog, not by this loop, which may be stuck in a renewal that never
        returns.
        """
        deadline = _Deadline(renewed_at + self.timing.renew_deadline)
        watchdog = threading.Thread(
            target=self._watch, args=(deadline, lost), name=f"deadline-{lease.name}"
        )
        watchdog.start()
        try:
            while not lost.wait(self.timing.retry_period) and not stop.is_set():
                sent_at = time.monotonic()
                try:
                    renewed = renew(self._lease_conn(), lease, self.timing.ttl)
                except psycopg.Error as error:  # timeout, restart, network
                    log.warning("%s: renew failed: %s", self.identity, error)
                    continue
                if not renewed:
                    log.warning("%s: lease %d lost", self.identity, lease.token)
                    break
                deadline.extend(sent_at + self.timing.renew_deadline)
        finally:
            lost.set()
            watchdog.join()

    # --8<-- [end:renew]

    # --8<-- [start:watchdog]
    def _watch(self, deadline: _Deadline, lost: threading.Event) -> None:
        """Set ``lost`` at the renew deadline, whatever the renewer is doing.

        A renewal can block far longer than its statement timeout: that timeout
        runs on the server, and a partition keeps the statement from reaching
        it. So the watchdog also shuts the lease connection's socket down,
        which makes the blocked call fail at once.
        """
        while not lost.wait(deadline.left()):
            if deadline.left() <= 0:
                log.warning("%s: renew deadline passed", self.identity)
                lost.set()
                self._interrupt()

    def _interrupt(self) -> None:
        """Fail any call blocked on the lease connection (the socket stays open)."""
        conn = self._conn
        if conn is None or conn.closed:
            return
        try:
            with socket.socket(fileno=os.dup(conn.fileno())) as sock:
                sock.shutdown(socket.SHUT_RDWR)
            self._interrupted = True  # the next lease statement reconnects
        except (OSError, psycopg.Error) as error:
            log.warning("%s: could not interrupt: %s", self.identity, error)

    # --8<-- [end:watchdog]

    def _release(self, lease: Lease) -> None:
        try:
            release(self._lease_conn(), lease)
        except psycopg.Error as error:  # the lease then simply expires
            log.warning("%s: release failed: %s", self.identity, error)
