"""Acknowledge fast, process asynchronously: a durable inbox before the 2xx.

A webhook provider waits a few seconds for your 2xx and treats anything slower
as a failed delivery. This module keeps the HTTP request short and the work
safe:

* `InboxReceiver` verifies a delivery, commits it to an SQLite inbox keyed by
  its delivery id, and only then answers `202 Accepted`.
* `InboxWorker` drains the inbox in the background: it claims a delivery with a
  lease, runs your handler, and marks the delivery done.
* `deliver` is the sending side as a provider runs it: a timeout per attempt,
  and a retry after every attempt that did not end in a 2xx.

Two broken receivers are kept for the tests and the page: `SyncReceiver` does
the slow work before it answers, and `MemoryQueueReceiver` answers first and
keeps the delivery only in process memory.

Run ``python -m snippets.webhook_design.acknowledge_fast`` to see both hazards
and the fix; ``... serve --db inbox.sqlite3`` runs one receiver until SIGTERM.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import logging
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20  # 1 MiB; Standard Webhooks recommends payloads under 20 kB
ROOT = Path(__file__).resolve().parent.parent.parent


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


@dataclass(frozen=True)
class Attempt:
    """What the sender saw for one attempt: a status code, or an error name."""

    status: int | None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def __str__(self) -> str:
        if self.status is not None:
            return str(self.status)
        return "timeout" if self.error == "TimeoutError" else self.error


# --8<-- [start:sender]
def deliver(
    url: str,
    delivery_id: str,
    payload: bytes,
    secret: str,
    *,
    timeout: float,
    attempts: int,
    backoff: float = 0.1,
) -> list[Attempt]:
    """POST one signed delivery the way a provider does: retry until a 2xx.

    Every attempt carries the same `webhook-id` with a fresh timestamp and
    signature. `timeout` bounds each socket operation: a receiver that sends
    nothing back for `timeout` seconds fails the attempt.
    """
    signer = Webhook(secret)
    seen: list[Attempt] = []
    for number in range(attempts):
        if number:
            time.sleep(backoff * 2 ** (number - 1))
        now = datetime.now(tz=UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": delivery_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signer.sign(delivery_id, now, payload.decode()),
        }
        seen.append(post(url, payload, headers, timeout=timeout))
        if seen[-1].ok:
            break
    return seen


# --8<-- [end:sender]


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float) -> Attempt:
    """One POST with a timeout. Any failure becomes an `Attempt` with its error."""
    target = urlsplit(url)
    host, port = target.hostname or "127.0.0.1", target.port
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", target.path or "/", body, headers)
        response = conn.getresponse()
        response.read()
        return Attempt(response.status)
    except (OSError, http.client.HTTPException) as error:
        return Attempt(None, type(error).__name__)
    finally:
        conn.close()


# --8<-- [start:server]
class WebhookServer(ThreadingHTTPServer):
    """One webhook endpoint. Subclasses decide what `accept` does.

    Request threads are not daemons: `server_close()` waits for the requests
    in flight, so a clean shutdown never cuts a handler off halfway.
    """

    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], secret: str) -> None:
        super().__init__(address, _WebhookRequest)
        self.verifier = Webhook(secret)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/webhooks"

    def accept(self, delivery_id: str, body: bytes) -> int:
        """Take a verified delivery and return the status code to answer."""
        raise NotImplementedError


# --8<-- [end:server]


# --8<-- [start:request]
class _WebhookRequest(BaseHTTPRequestHandler):
    server: WebhookServer
    timeout = 10  # seconds a client may take to send its request

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("content-length", "0"))
            if not 0 < length <= MAX_BODY:
                return self._answer(413 if length > MAX_BODY else 400)
            body = self.rfile.read(length)
            self.server.verifier.verify(body, dict(self.headers), json_parse=False)
        except (WebhookVerificationError, ValueError):
            return self._answer(401)  # unsigned, badly signed or stale
        except OSError:
            return self._answer(400)  # the body never arrived in full
        self._answer(self.server.accept(self.headers["webhook-id"], body))

    def _answer(self, status: int) -> None:
        try:
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()
        except OSError:
            log.warning("no one to answer %d to: the sender hung up", status)

    def log_message(self, format: str, *args: object) -> None:
        log.debug(format, *args)


# --8<-- [end:request]


# --8<-- [start:sync]
class SyncReceiver(WebhookServer):
    """The broken version: run the handler, then answer.

    When the handler takes longer than the provider's timeout, the provider
    hangs up, counts a failure and sends the same delivery again, while the
    first run is still going.
    """

    def __init__(self, address: tuple[str, int], secret: str, handler: Handler) -> None:
        super().__init__(address, secret)
        self.handler = handler

    def accept(self, delivery_id: str, body: bytes) -> int:
        self.handler(Delivery(delivery_id, body))  # the slow part
        return 200  # often to a sender who has already given up


# --8<-- [end:sync]


# --8<-- [start:memory]
class MemoryQueueReceiver(WebhookServer):
    """The other broken version: answer 202 at once, work from a queue in memory.

    The provider sees a fast 2xx and never sends this delivery again. If the
    process dies before a worker has run it, nothing remembers it.
    """

    def __init__(self, address: tuple[str, int], secret: str, handler: Handler) -> None:
        super().__init__(address, secret)
        self.handler = handler
        self.pending: queue.Queue[Delivery] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="memory-worker")

    def accept(self, delivery_id: str, body: bytes) -> int:
        self.pending.put(Delivery(delivery_id, body))  # only in this process
        return 202

    # --8<-- [end:memory]

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                delivery = self.pending.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                self.handler(delivery)
            except Exception:
                log.exception("delivery %s failed and is gone", delivery.delivery_id)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        self._stop.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()


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


# --8<-- [start:receiver]
class InboxReceiver(WebhookServer):
    """The pattern: verify, commit the delivery to the inbox, then answer 202.

    A duplicate (same `webhook-id`) is answered 202 as well: it is stored
    already. If the write fails, the answer is 503, never a 2xx, so the
    provider keeps the delivery and tries again later.
    """

    def __init__(self, address: tuple[str, int], secret: str, inbox: Inbox) -> None:
        super().__init__(address, secret)
        self.inbox = inbox

    def accept(self, delivery_id: str, body: bytes) -> int:
        try:
            self.inbox.add(delivery_id, body)  # committed when this returns
        except sqlite3.Error:
            log.exception("could not store delivery %s", delivery_id)
            return 503
        return 202


# --8<-- [end:receiver]


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


# --------------------------------------------------------------------------- #
# The demo: a slow handler behind each receiver, and a crash after the 2xx
# --------------------------------------------------------------------------- #

DEMO_SECRET = "whsec_" + base64.b64encode(b"demo-only-secret-32-bytes-long!!").decode()
PAYLOAD = b'{"type":"invoice.paid","data":{"id":"in_1"}}'


def record_effect(db: str | Path, work: float) -> Handler:
    """A handler that takes `work` seconds, then records one effect row.

    It stands in for a slow call to another system (an email, a charge). The
    `effects` table counts how often it ran, duplicates included.
    """
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS effects (delivery_id TEXT NOT NULL)")

    def handle(delivery: Delivery) -> None:
        time.sleep(work)
        with closing(sqlite3.connect(db, timeout=5, isolation_level=None)) as conn:
            conn.execute("INSERT INTO effects VALUES (?)", (delivery.delivery_id,))

    return handle


def count_effects(db: str | Path) -> int:
    """How many times the demo handler ran, over all deliveries."""
    with closing(sqlite3.connect(db)) as conn:
        return int(conn.execute("SELECT count(*) FROM effects").fetchone()[0])


@dataclass(frozen=True)
class SlowHandlerResult:
    """One receiver behind a slow handler: what the sender saw, what ran."""

    receiver: str
    attempts: list[Attempt]
    effects: int
    timeout: float
    work: float
    max_attempts: int


def slow_handler(
    receiver: str,
    workdir: Path,
    *,
    timeout: float = 1.0,
    work: float = 1.5,
    attempts: int = 3,
) -> SlowHandlerResult:
    """Send one delivery to a receiver whose handler outlasts the sender's timeout.

    `receiver` is "sync" (`SyncReceiver`) or "inbox" (`InboxReceiver` plus an
    `InboxWorker`). Returns after every handler run has finished.
    """
    db = workdir / f"{receiver}.sqlite3"
    finished = threading.Event()
    effect = record_effect(db, work)

    def handler(delivery: Delivery) -> None:
        effect(delivery)
        finished.set()

    server: WebhookServer
    worker: InboxWorker | None = None
    if receiver == "sync":
        server = SyncReceiver(("127.0.0.1", 0), DEMO_SECRET, handler)
    else:
        inbox = Inbox(db)
        server = InboxReceiver(("127.0.0.1", 0), DEMO_SECRET, inbox)
        worker = InboxWorker(inbox, handler, poll=0.1)
        worker.start()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,))
    thread.start()
    try:
        seen = deliver(
            server.url,
            "evt_1",
            PAYLOAD,
            DEMO_SECRET,
            timeout=timeout,
            attempts=attempts,
        )
        finished.wait(timeout=work + 10)
    finally:
        server.shutdown()
        server.server_close()  # waits for handlers still running
        thread.join(timeout=10)
        if worker is not None:
            worker.stop()
    return SlowHandlerResult(receiver, seen, count_effects(db), timeout, work, attempts)


def format_slow_handler(results: list[SlowHandlerResult]) -> list[str]:
    """The lines the page shows for `slow_handler` runs."""
    names = {"sync": "work, then answer", "inbox": "inbox, then answer"}
    first = results[0]
    lines = [
        f"sender: {first.timeout} s timeout per attempt, up to"
        f" {first.max_attempts} attempts; handler: {first.work} s"
    ]
    for result in results:
        seen = ", ".join(str(a) for a in result.attempts)
        lines.append(
            f"{names[result.receiver]:<20} sender saw: {seen:<26}"
            f" handler ran {result.effects}x"
        )
    return lines


class ReceiverProcess:
    """`serve` in a child process, for crash tests: start it, read it, kill it."""

    def __init__(self, db: Path, mode: str, *, paused: bool, work: float) -> None:
        command = [sys.executable, "-m", __spec__.name if __spec__ else __name__]
        command += ["serve", "--db", str(db), "--mode", mode, "--work", str(work)]
        self.process = subprocess.Popen(
            [*command, "--paused"] if paused else command,
            cwd=ROOT,
            env={**os.environ, "WEBHOOK_SECRET": DEMO_SECRET},
            stdout=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        try:
            self.url = self.expect("listening ")
            self.recovered = int(self.expect("recovered "))
        except BaseException:
            self.kill()  # never leave a half-started receiver behind
            raise

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))

    def expect(self, prefix: str, timeout: float = 10.0) -> str:
        """The rest of the next line the child prints, which must start so."""
        line = self._lines.get(timeout=timeout)
        if not line.startswith(prefix):
            raise AssertionError(f"expected {prefix!r}, the receiver said {line!r}")
        return line.removeprefix(prefix)

    def kill(self) -> None:
        """SIGKILL: no handler, no cleanup, no flush."""
        self.process.kill()
        self.process.wait(timeout=10)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass(frozen=True)
class CrashResult:
    """A receiver killed after its 2xx: what the sender saw, what survived."""

    mode: str
    sender_saw: Attempt
    recovered: int
    effects: int


def crash_after_ack(mode: str, workdir: Path) -> CrashResult:
    """Deliver to a receiver process, SIGKILL it after its 2xx, then restart it.

    The first process runs with its worker paused, as if busy with a backlog,
    so the kill always lands between the 2xx and the processing. `mode` is
    "memory" (`MemoryQueueReceiver`) or "inbox" (`InboxReceiver`).
    """
    db = workdir / f"crash-{mode}.sqlite3"
    with ReceiverProcess(db, mode, paused=True, work=0) as child:
        sent = deliver(child.url, "evt_2", PAYLOAD, DEMO_SECRET, timeout=5, attempts=1)
        child.kill()
    with ReceiverProcess(db, mode, paused=False, work=0) as child:
        recovered = child.recovered
        for _ in range(recovered):
            child.expect("processed ")
    return CrashResult(mode, sent[0], recovered, count_effects(db))


def format_crash(results: list[CrashResult]) -> list[str]:
    """The lines the page shows for `crash_after_ack` runs."""
    names = {"memory": "202, queue in memory", "inbox": "inbox, then 202"}
    return [
        f"{names[r.mode]:<21} sender saw: {r.sender_saw}  kill -9, restart:"
        f" recovered {r.recovered}, handler ran {r.effects}x"
        for r in results
    ]


# --8<-- [start:serve]
def serve(db: Path, mode: str, *, secret: str, paused: bool, work: float) -> None:
    """Run one receiver until SIGTERM or SIGINT, then shut down in order.

    Stop taking requests, wait for the requests in flight, then let the
    worker finish its current delivery. Whatever is left stays in the inbox.
    """
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    effect = record_effect(db, work)

    def handler(delivery: Delivery) -> None:
        effect(delivery)
        print("processed", delivery.delivery_id, flush=True)

    server: InboxReceiver | MemoryQueueReceiver
    if mode == "inbox":
        inbox = Inbox(db)
        server = InboxReceiver(("127.0.0.1", 0), secret, inbox)
        background: InboxWorker | MemoryQueueReceiver = InboxWorker(inbox, handler)
        recovered = inbox.count("pending")
    else:
        server = background = MemoryQueueReceiver(("127.0.0.1", 0), secret, handler)
        recovered = server.pending.qsize()  # always 0: memory starts empty
    thread = threading.Thread(target=server.serve_forever, args=(0.1,))
    thread.start()
    print("listening", server.url, flush=True)
    print("recovered", recovered, flush=True)
    if not paused:
        background.start()
    stop.wait()
    server.shutdown()
    server.server_close()
    thread.join()
    if not paused:
        background.stop()


# --8<-- [end:serve]


@contextmanager
def _workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def main(argv: list[str] | None = None) -> None:
    """Print the demo, or run `serve` with the command-line options."""
    parser = argparse.ArgumentParser(prog="acknowledge_fast")
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser("serve", help="run one receiver until SIGTERM")
    run.add_argument("--db", type=Path, required=True)
    run.add_argument("--mode", choices=["inbox", "memory"], default="inbox")
    run.add_argument("--paused", action="store_true", help="do not start the worker")
    run.add_argument("--work", type=float, default=0.0, help="handler seconds")
    args = parser.parse_args(argv)
    if args.command == "serve":
        secret = os.environ.get("WEBHOOK_SECRET")
        if not secret:
            parser.error("set WEBHOOK_SECRET to the endpoint's signing secret")
        serve(args.db, args.mode, secret=secret, paused=args.paused, work=args.work)
        return
    with _workdir() as workdir:
        slow = [slow_handler(name, workdir) for name in ("sync", "inbox")]
        crash = [crash_after_ack(mode, workdir) for mode in ("memory", "inbox")]
    print(*format_slow_handler(slow), sep="\n")
    print(*format_crash(crash), sep="\n")


if __name__ == "__main__":
    main()
