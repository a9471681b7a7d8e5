"""Lease-based leader election with fencing tokens, on PostgreSQL.

One row per lease holds the holder, a fencing token that grows by one on every
acquisition, and an expiry time computed by the database clock (``now()``), so
replicas never compare their own clocks with each other. The leader renews the
lease well before it expires and steps down when it cannot renew in time.

A lease alone cannot stop a leader that was paused (GC, SIGSTOP, a frozen VM)
and resumes after another replica took over. So every write the leader makes
carries its token, and the protected table refuses any token lower than the
highest it has accepted, in the same statement that makes the write.
"""

from __future__ import annotations

import itertools
import logging
import math
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
from psycopg.rows import TupleRow

Conn = psycopg.Connection[TupleRow]

log = logging.getLogger(__name__)

JITTER: Final = 1.2  # campaign retries wait retry_period x [1, 1.2], as client-go


# --8<-- [start:schema]
SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS leases (
    name       text PRIMARY KEY,
    holder     text,
    token      bigint NOT NULL DEFAULT 0,
    expires_at timestamptz NOT NULL DEFAULT '-infinity'
);
CREATE TABLE IF NOT EXISTS fences (
    resource text PRIMARY KEY,
    token    bigint NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS ledger (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    resource text NOT NULL,
    token    bigint NOT NULL,
    holder   text NOT NULL,
    entry    text NOT NULL
);
"""


def create_schema(conn: Conn, *, lease: str, resource: str) -> None:
    """Create the tables and the rows for one lease and one protected resource.

    Run it once (as a migration), not from every replica at start-up.
    """
    conn.execute(SCHEMA)
    conn.execute(
        "INSERT INTO leases (name) VALUES (%s) ON CONFLICT DO NOTHING", (lease,)
    )
    conn.execute(
        "INSERT INTO fences (resource) VALUES (%s) ON CONFLICT DO NOTHING",
        (resource,),
    )


# --8<-- [end:schema]


# --8<-- [start:connect]
def connect(
    dsn: str, *, statement_timeout: float | None = None, io_timeout: float = 10.0
) -> Conn:
    """Open an autocommit connection whose waits are all bounded.

    Args:
        dsn: A libpq connection string or URL.
        statement_timeout: Seconds after which the server cancels a statement.
            The lease connection uses the retry period, so a renewal that hangs
            on a lock or a slow server cannot outlive the renew deadline.
        io_timeout: Seconds to wait for the server to connect, for sent data
            to be acknowledged (``tcp_user_timeout``) and for a silent
            connection to be declared dead by keepalives. libpq's minimum
            connect timeout is 2 s.
    """
    seconds = max(2, math.ceil(io_timeout))
    conn = psycopg.connect(
        dsn,
        autocommit=True,
        connect_timeout=seconds,
        tcp_user_timeout=seconds * 1000,
        keepalives=1,
        keepalives_idle=seconds,
        keepalives_interval=1,
        keepalives_count=3,
    )
    if statement_timeout is not None:
        millis = f"{round(statement_timeout * 1000)}ms"
        conn.execute("SELECT set_config('statement_timeout', %s, false)", (millis,))
    return conn


# --8<-- [end:connect]


# --8<-- [start:lease]
@dataclass(frozen=True)
class Lease:
    """A term of leadership.

    Attributes:
        name: The lease's name: one lease per singleton job.
        holder: This replica's identity.
        token: The fencing token of this term. Every write must carry it.
    """

    name: str
    holder: str
    token: int


ACQUIRE: Final = """
UPDATE leases
   SET holder = %(holder)s, token = token + 1, expires_at = now() + %(ttl)s
 WHERE name = %(name)s AND expires_at <= now()
RETURNING token
"""


def try_acquire(conn: Conn, name: str, holder: str, ttl: timedelta) -> Lease | None:
    """Take the lease if it is free or expired; the token grows by one.

    Two replicas that race for an expired lease update the same row: the row
    lock orders them, and the second one finds the lease taken.
    """
    row = conn.execute(ACQUIRE, {"name": name, "holder": holder, "ttl": ttl})
    found = row.fetchone()
    return None if found is None else Lease(name, holder, int(found[0]))


# --8<-- [end:lease]


# --8<-- [start:renew-release]
RENEW: Final = """
UPDATE leases SET expires_at = now() + %(ttl)s
 WHERE name = %(name)s AND holder = %(holder)s AND token = %(token)s
   AND expires_at > now()
"""


def renew(conn: Conn, lease: Lease, ttl: timedelta) -> bool:
    """Extend the lease; False once it has expired or another replica holds it."""
    params = {"name": lease.name, "holder": lease.holder, "token": lease.token}
    return conn.execute(RENEW, {**params, "ttl": ttl}).rowcount == 1


def release(conn: Conn, lease: Lease) -> bool:
    """Hand the lease back at once, so a successor need not wait for it to expire."""
    cursor = conn.execute(
        "UPDATE leases SET holder = NULL, expires_at = '-infinity'"
        " WHERE name = %s AND holder = %s AND token = %s",
        (lease.name, lease.holder, lease.token),
    )
    return cursor.rowcount == 1


# --8<-- [end:renew-release]


# --8<-- [start:unfenced]
def unfenced_write(conn: Conn, lease: Lease, resource: str, entry: str) -> bool:
    """Write as the leader without a fence. **Broken.**

    The leader checked its lease some time before this statement. If it was
    paused in between and another replica took over, this stale write still
    lands: the job runs twice, or an older state overwrites a newer one.
    """
    conn.execute(
        "INSERT INTO ledger (resource, token, holder, entry) VALUES (%s, %s, %s, %s)",
        (resource, lease.token, lease.holder, entry),
    )
    return True


# --8<-- [end:unfenced]


# --8<-- [start:fenced]
FENCED_WRITE: Final = """
WITH fence AS (
    UPDATE fences SET token = %(token)s
     WHERE resource = %(resource)s AND token <= %(token)s
    RETURNING resource
)
INSERT INTO ledger (resource, token, holder, entry)
SELECT resource, %(token)s, %(holder)s, %(entry)s FROM fence
RETURNING id
"""


def fenced_write(conn: Conn, lease: Lease, resource: str, entry: str) -> bool:
    """Write only if no newer token has written to ``resource``.

    The fence check and the write are one statement: the ``UPDATE`` locks the
    fence row, so a concurrent writer with a newer token waits for it and then
    re-checks, and a stale token finds ``token <= %(token)s`` false.

    Returns:
        False when the write was refused: this replica is no longer the leader
        and must stop acting as one.
    """
    params = {
        "token": lease.token,
        "resource": resource,
        "holder": lease.holder,
        "entry": entry,
    }
    return conn.execute(FENCED_WRITE, params).fetchone() is not None


# --8<-- [end:fenced]


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
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                self._conn.close()
            retry = self.timing.retry_period
            self._conn = connect(self.dsn, statement_timeout=retry, io_timeout=retry)
        return self._conn

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
        except (OSError, psycopg.Error) as error:
            log.warning("%s: could not interrupt: %s", self.identity, error)

    # --8<-- [end:watchdog]

    def _release(self, lease: Lease) -> None:
        try:
            release(self._lease_conn(), lease)
        except psycopg.Error as error:  # the lease then simply expires
            log.warning("%s: release failed: %s", self.identity, error)


DEMO_TIMING: Final = Timing(lease_duration=1.0, renew_deadline=0.6, retry_period=0.2)


# --8<-- [start:demo]
def demo(dsn: str, *, replicas: int = 3, terms: int = 6) -> list[str]:
    """Run ``replicas`` electors as threads for ``terms`` terms; summarize them.

    Each leader makes one fenced write, keeps the lease through two renewals
    and hands it back.
    """
    stop, guard = threading.Event(), threading.Lock()
    spans: list[tuple[int, float, float]] = []  # (token, started, ended)
    with connect(dsn) as conn:
        create_schema(conn, lease="demo", resource="demo")

        def lead(lease: Lease, lost: threading.Event) -> None:
            start = time.monotonic()
            with guard:
                if len(spans) >= terms:
                    stop.set()
                    return
            with connect(dsn) as own:
                accepted = fenced_write(own, lease, "demo", f"term {lease.token}")
            # Lead through two renewals, then hand over.
            kept = not lost.wait(2.5 * DEMO_TIMING.retry_period)
            if accepted and kept:
                with guard:
                    spans.append((lease.token, start, time.monotonic()))

        electors = [
            LeaderElector(dsn, lease="demo", identity=f"r{n}", timing=DEMO_TIMING)
            for n in range(replicas)
        ]
        threads = [threading.Thread(target=e.run, args=(lead, stop)) for e in electors]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        stop.set()
        (entries,) = conn.execute("SELECT count(*) FROM ledger").fetchone() or (0,)
    spans.sort()
    overlaps = sum(a[2] > b[1] for a, b in itertools.pairwise(spans))
    return [
        f"{replicas} replicas, {len(spans)} terms",
        "tokens in order of leadership: " + ", ".join(str(s[0]) for s in spans),
        f"terms that overlapped the next one: {overlaps}",
        f"fenced writes accepted: {entries}",
    ]


# --8<-- [end:demo]
