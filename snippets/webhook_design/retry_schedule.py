"""Sender-side webhook retries: exponential backoff, full jitter, Retry-After.

A sender that retries every failed delivery on the same fixed schedule sends
all of them again at the same instants. After an outage, the receiver that has
just come back gets the whole backlog in one second. This module keeps a ledger
of deliveries in SQLite and schedules each retry at a random point below that
attempt's ceiling ("full jitter"), never earlier than the receiver's
``Retry-After`` asks.

* `RetryPolicy` turns an attempt number into a delay.
* `parse_retry_after` reads both forms of the ``Retry-After`` header.
* `classify` decides between delivered, retry, rejected and gone.
* `RetryDispatcher` stores deliveries and sends the ones that are due; each
  attempt is leased in the ledger first, so several dispatchers can share it.
* `VirtualClock` lets tests and simulations skip the waiting.
"""

from __future__ import annotations

import email.utils
import enum
import http.client
import http.server
import logging
import math
import random
import re
import sqlite3
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC
from types import TracebackType
from typing import Final, Protocol

from snippets.webhook_design.verify_then_dedupe import parse_secret, signature_headers

log = logging.getLogger(__name__)

# --8<-- [start:policy]
# Standard Webhooks' example schedule: immediately, then these waits before
# retries 1 to 9 (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h).
STANDARD_WEBHOOKS_SCHEDULE: Final = (
    5.0, 300.0, 1_800.0, 7_200.0, 18_000.0, 36_000.0, 50_400.0, 72_000.0, 86_400.0,
)  # fmt: skip


@dataclass(frozen=True)
class RetryPolicy:
    """When to retry a failed delivery, and when to stop.

    Attempt 1 is immediate. After failed attempt ``n`` the next one waits a
    random time between 0 and ``schedule[n - 1]`` seconds ("full jitter").
    After ``len(schedule) + 1`` attempts the delivery has failed for good.

    Attributes:
        schedule: The ceiling of each wait in seconds, one per retry.
        jitter: Draw each wait below its ceiling. ``False`` waits the full
            ceiling: the synchronized schedule that causes retry herds.
        max_retry_after: The longest ``Retry-After`` honoured, in seconds.
        permanent: Statuses that fail a delivery at once. Empty by default:
            like Standard Webhooks, every non-2xx but 410 is retried.
    """

    schedule: tuple[float, ...] = STANDARD_WEBHOOKS_SCHEDULE
    jitter: bool = True
    max_retry_after: float = 86_400.0
    permanent: frozenset[int] = frozenset()

    @classmethod
    def exponential(
        cls,
        base: float,
        cap: float,
        retries: int,
        *,
        jitter: bool = True,
        permanent: frozenset[int] = frozenset(),
    ) -> RetryPolicy:
        """Ceilings ``base``, ``2 * base``, ``4 * base`` ... capped at ``cap``."""
        ceilings = tuple(min(cap, base * 2**n) for n in range(retries))
        return cls(ceilings, jitter, permanent=permanent)

    @property
    def max_attempts(self) -> int:
        """Attempts in all: the immediate one plus one per schedule entry."""
        return len(self.schedule) + 1

    # --8<-- [end:policy]

    # --8<-- [start:delay]
    def delay(
        self, attempt: int, rng: random.Random, retry_after: float | None = None
    ) -> float | None:
        """Seconds to wait after failed attempt ``attempt`` (1-based).

        Returns ``None`` when no attempt is left. A ``Retry-After`` value,
        capped at ``max_retry_after``, is a floor: the jittered wait is added
        on top, so deliveries that got the same value do not return together.
        """
        if attempt < 1:
            raise ValueError(f"attempts count from 1, not {attempt}")
        if attempt >= self.max_attempts:
            return None
        ceiling = self.schedule[attempt - 1]
        wait = rng.uniform(0.0, ceiling) if self.jitter else ceiling
        if retry_after is not None:
            wait += min(max(retry_after, 0.0), self.max_retry_after)
        return wait

    # --8<-- [end:delay]


# --8<-- [start:retry-after]
_DELAY_SECONDS = re.compile(r"[0-9]+")


def parse_retry_after(value: str | None, now: float) -> float | None:
    """The wait in seconds that a ``Retry-After`` header asks for, or ``None``.

    RFC 9110 allows two forms: delay-seconds (``120``) and an HTTP-date
    (``Fri, 31 Dec 1999 23:59:59 GMT``). A date in the past means "now" (0).
    A value in neither form is ignored, as if the header were absent.

    Args:
        value: The header value, or ``None`` when the response had none.
        now: The current wall-clock time in seconds since the epoch.
    """
    if value is None:
        return None
    value = value.strip()
    if _DELAY_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": the date is in UTC
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


# --8<-- [end:retry-after]


# --8<-- [start:classify]
class Outcome(enum.Enum):
    """What one attempt means for its delivery."""

    DELIVERED = "delivered"
    RETRY = "retry"
    REJECTED = "rejected"  # a status you declared permanent
    GONE = "gone"  # 410: the receiver wants no more webhooks


def classify(status: int | None, permanent: frozenset[int] = frozenset()) -> Outcome:
    """Classify an HTTP status; ``None`` means no response (timeout, refused).

    2xx is delivered. 410 Gone disables the endpoint. A status in
    ``permanent`` fails the delivery without a retry. Everything else (3xx,
    which is never followed, every other 4xx, 5xx, and no response at all)
    is retried: a 404 or 401 is often a deploy or a rotated key away from 200.
    """
    if status is None:
        return Outcome.RETRY
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status == 410:
        return Outcome.GONE
    if status in permanent:
        return Outcome.REJECTED
    return Outcome.RETRY


# --8<-- [end:classify]


@dataclass(frozen=True)
class Response:
    """What one attempt got back: a status, or an error and no status."""

    status: int | None
    retry_after: str | None = None
    error: str | None = None

    @property
    def summary(self) -> str:
        """``HTTP 503`` or the error name, for logs and the attempt ledger."""
        return self.error or f"HTTP {self.status}"


# --8<-- [start:post]
def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> Response:
    """POST once without following redirects; I/O errors become a `Response`.

    ``timeout`` bounds the connect and every socket read, so an endpoint that
    accepts the connection and never answers costs about ``timeout`` seconds.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    factory = (
        http.client.HTTPSConnection
        if parts.scheme == "https"
        else http.client.HTTPConnection
    )
    connection = factory(parts.hostname, parts.port, timeout=timeout)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    try:
        connection.request(
            "POST",
            target,
            body=body,
            headers={"Content-Type": "application/json", **headers},
        )
        response = connection.getresponse()
        response.read(64 * 1024)  # the body does not matter; do not read it all
        return Response(response.status, response.getheader("Retry-After"))
    except TimeoutError:
        return Response(None, error="timeout")
    except (OSError, http.client.HTTPException) as error:
        return Response(None, error=type(error).__name__)
    finally:
        connection.close()


# --8<-- [end:post]


# --8<-- [start:clock]
class Clock(Protocol):
    """Wall-clock time, and a wait that a stop event can cut short."""

    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        """Wait up to ``seconds``; return ``True`` if ``stop`` is set."""
        ...


class SystemClock:
    """The real clock. Waiting blocks, and ends early when ``stop`` is set."""

    def now(self) -> float:
        return time.time()

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        return stop.wait(max(0.0, seconds))


# --8<-- [end:clock]


# --8<-- [start:virtual-clock]
class VirtualClock:
    """A clock for tests and simulations: waiting moves time forward at once.

    Args:
        start: The initial time; 2026-01-01T00:00:00Z by default.
    """

    def __init__(self, start: float = 1_767_225_600.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        with self._lock:
            self._now += max(0.0, seconds)
        return stop.is_set()


# --8<-- [end:virtual-clock]


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


@dataclass(frozen=True)
class Reply:
    """What a `Receiver` answers: a status, headers, and an optional hang."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    hang: float = 0.0  # seconds to hold the request before answering
    until: threading.Event | None = None  # ends the hang early once set


@dataclass(frozen=True)
class Arrival:
    """One request as the receiver saw it."""

    at: float
    headers: Mapping[str, str]
    body: bytes
    in_flight: int  # requests being handled at that moment, this one included


class Receiver:
    """A real webhook endpoint on loopback, for demos and tests.

    Args:
        answer: Called with the request number (1-based) and the current time;
            returns the `Reply`.
        now: The receiver's clock, such as a `VirtualClock`'s ``now``.
    """

    def __init__(
        self,
        answer: Callable[[int, float], Reply] = lambda n, now: Reply(),
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.arrivals: list[Arrival] = []
        self.max_in_flight = 0
        self._answer, self._now = answer, now
        self._lock = threading.Lock()
        self._in_flight = 0
        self._released = threading.Event()  # ends every hang at shutdown
        self._server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), self._handler()
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/webhook"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _receive(self, headers: Mapping[str, str], body: bytes) -> Reply:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            now = self._now()
            self.arrivals.append(Arrival(now, headers, body, self._in_flight))
            return self._answer(len(self.arrivals), now)

    def _done(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                reply = receiver._receive(headers, body)
                try:
                    if reply.hang:
                        deadline = time.monotonic() + reply.hang
                        while not receiver._released.is_set() and not (
                            reply.until is not None and reply.until.is_set()
                        ):
                            left = deadline - time.monotonic()
                            if left <= 0:
                                break
                            receiver._released.wait(min(left, 0.01))
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender timed out and closed the connection
                finally:
                    receiver._done()

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output clean

        return Handler


# --8<-- [start:herd]
def herd(
    policy: RetryPolicy, deliveries: int = 100, outage: float = 60.0
) -> list[float]:
    """Arrival times (s) at a receiver that answers 503 for the first ``outage`` s.

    Every delivery is enqueued at t=0 and fails while the receiver is down.
    Time is virtual, so a run takes about a second; the requests are real.
    """
    clock = VirtualClock()
    start = clock.now()

    def answer(n: int, now: float) -> Reply:
        return Reply(503 if now - start < outage else 200)

    with (
        Receiver(answer, clock.now) as receiver,
        closing(sqlite3.connect(":memory:")) as db,
    ):
        dispatcher = RetryDispatcher(
            db, policy, clock=clock, rng=random.Random(7), timeout=5.0
        )
        for n in range(deliveries):
            dispatcher.enqueue(receiver.url, b'{"type":"invoice.paid"}', f"msg_{n}")
        dispatcher.run(threading.Event(), until_idle=True, max_wait=math.inf)
    return [arrival.at - start for arrival in receiver.arrivals]


def per_second(arrivals: list[float], since: float = 0.0) -> Counter[int]:
    """Requests per one-second bucket, counting arrivals at or after ``since``."""
    return Counter(int(at) for at in arrivals if at >= since)


# --8<-- [end:herd]


# --8<-- [start:demo]
POLICIES: Final = {
    "fixed 30 s, no jitter": RetryPolicy((30.0,) * 8, jitter=False),
    "exponential, no jitter": RetryPolicy.exponential(5, 3_600, 8, jitter=False),
    "exponential, full jitter": RetryPolicy.exponential(5, 3_600, 8),
}


def demo(outage: float = 60.0) -> list[str]:
    """100 deliveries fail during a 60 s outage; one line per policy."""
    runs = {name: herd(policy, outage=outage) for name, policy in POLICIES.items()}
    return summarize(runs, outage)


def summarize(runs: Mapping[str, list[float]], outage: float = 60.0) -> list[str]:
    """A table: requests, the busiest second after recovery, the last arrival."""
    lines = ["policy                    requests  busiest second  last delivery"]
    lines.append("                                    after recovery")
    for name, arrivals in runs.items():
        busiest = max(per_second(arrivals, since=outage).values())
        last = max(arrivals)
        lines.append(f"{name:<25} {len(arrivals):>8}  {busiest:>14}  {last:>11.0f} s")
    return lines


# --8<-- [end:demo]


# --8<-- [start:table]
def schedule_table(seed: int = 7) -> list[str]:
    """Standard Webhooks' ceilings and one seeded draw of full jitter."""
    policy, rng = RetryPolicy(), random.Random(seed)
    lines = ["retry   ceiling  drawn wait"]
    for attempt, ceiling in enumerate(policy.schedule, start=1):
        wait = policy.delay(attempt, rng)
        assert wait is not None
        lines.append(f"{attempt:>5}  {_human(ceiling):>8}  {_human(wait):>10}")
    return lines


def _human(seconds: float) -> str:
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


# --8<-- [end:table]

if __name__ == "__main__":
    print(*demo(), sep="\n")
    print()
    print(*schedule_table(), sep="\n")
