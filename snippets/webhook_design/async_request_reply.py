"""Asynchronous request-reply: 202 Accepted, a status resource, an idempotency key.

A client starts long-running work with ``POST /jobs`` and learns the outcome
later, from a signed callback or by polling. Both sides are real HTTP servers
on threads, and both keep their state in SQLite.

The server (`JobService` behind `JobServer`):

* answers ``202 Accepted`` with ``Location: /status/{id}`` and ``Retry-After``;
* stores the ``Idempotency-Key`` with the job before any work starts, so a
  repeated POST gets the existing status resource, and the same key with a
  different body gets ``422``;
* answers ``303 See Other`` from the status resource once the job succeeded,
  and cancels on ``DELETE``;
* sends a Standard Webhooks signed callback that carries the job id and the
  key.

The client (`JobClient` with `CallbackReceiver`) writes the key down before it
sends the request, so a callback that arrives before the ``202`` finds its
row; it polls with ``Retry-After`` when no callback comes.

Standard library only.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import http.client
import json
import logging
import queue
import re
import secrets
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urljoin, urlsplit

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
MAX_KEY_LENGTH = 255  # Stripe's limit; the IETF draft leaves the format to you
TOLERANCE_SECONDS = 300  # what the Standard Webhooks libraries use
FINAL_STATES = ("succeeded", "failed", "cancelled")
# Visible ASCII without '"' and '\': a key fits an sf-string unescaped.
_KEY = re.compile(rf"[\x21\x23-\x5b\x5d-\x7e]{{1,{MAX_KEY_LENGTH}}}")

Headers = Mapping[str, str]


# --------------------------------------------------------------------------- #
# Signing the callback (Standard Webhooks, v1 = HMAC-SHA256)
# --------------------------------------------------------------------------- #


class SignatureError(Exception):
    """The callback is not authentic or not fresh: answer 401."""


# --8<-- [start:sign]
def new_secret() -> str:
    """A random signing secret in the Standard Webhooks ``whsec_`` format."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def sign_headers(
    secret: str, msg_id: str, body: bytes, *, now: float | None = None
) -> dict[str, str]:
    """The ``webhook-*`` headers of one delivery attempt."""
    stamp = str(int(time.time() if now is None else now))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + base64.b64encode(mac.digest()).decode(),
    }


def verify_headers(secret: str, headers: Headers, body: bytes) -> str:
    """Return the ``webhook-id`` of an authentic, fresh delivery.

    Raises:
        SignatureError: A header is missing, no signature matches the raw
            body, or the timestamp is more than 5 minutes off either way.
    """
    found = {name.lower(): value for name, value in headers.items()}
    msg_id, stamp = found.get("webhook-id", ""), found.get("webhook-timestamp", "")
    if not (msg_id and stamp.isascii() and stamp.isdigit()):
        raise SignatureError("missing webhook headers")
    expected = sign_headers(secret, msg_id, body, now=int(stamp))["webhook-signature"]
    received = found.get("webhook-signature", "").split()
    if not any(hmac.compare_digest(s.encode(), expected.encode()) for s in received):
        raise SignatureError("no matching signature")
    if abs(time.time() - int(stamp)) > TOLERANCE_SECONDS:
        raise SignatureError("timestamp outside the tolerance")
    return msg_id


# --8<-- [end:sign]


# --------------------------------------------------------------------------- #
# HTTP helpers
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Response:
    """One HTTP response: status, lower-cased headers and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


def request(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: Headers | None = None,
    timeout: float = 5.0,
) -> Response:
    """Send one request with `http.client`; redirects are not followed.

    Raises:
        OSError: The connection failed or timed out (`TimeoutError`).
        http.client.HTTPException: The server answered garbage.
    """
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, path or "/", body=body, headers=dict(headers or {}))
        answer = conn.getresponse()
        found = {name.lower(): value for name, value in answer.getheaders()}
        return Response(answer.status, found, answer.read())
    finally:
        conn.close()


def retry_after(value: str | None, default: float) -> float:
    """Seconds to wait from a ``Retry-After`` value: delay-seconds or an HTTP-date."""
    if value is None:
        return default
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, when.timestamp() - time.time())


def _json_body(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


class BackgroundServer:
    """Serves a `ThreadingHTTPServer` on a thread; a context manager.

    Leaving the block stops accepting requests, then waits for the requests in
    flight (the server class must keep ``daemon_threads = False``).

    Args:
        httpd: The bound server.
        path: Appended to the base URL in `url`.
    """

    def __init__(self, httpd: ThreadingHTTPServer, path: str = "") -> None:
        self._httpd = httpd
        self._path = path
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.1},  # how soon shutdown() is noticed
            name=type(self).__name__,
            daemon=True,
        )

    @property
    def url(self) -> str:
        """``http://host:port`` followed by the path given at construction."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}{self._path}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._httpd.shutdown()  # stop the accept loop
        self._httpd.server_close()  # then wait for requests in flight
        self._thread.join(timeout=5)


# --------------------------------------------------------------------------- #
# The server: jobs, idempotency keys, status resources
# --------------------------------------------------------------------------- #


class RequestError(Exception):
    """The request is rejected before any job exists; ``status`` is the answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Accepted:
    """The job a POST maps to; ``replayed`` when its key was seen before."""

    job_id: str
    replayed: bool


@dataclass(frozen=True)
class JobStatus:
    """What the status resource knows about a job."""

    job_id: str
    state: str
    result: Any


Work = Callable[[Any], Any]
"""The long-running work: takes the request's ``input``, returns a JSON value."""

# --8<-- [start:server-schema]
SERVER_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id              TEXT PRIMARY KEY,
    idempotency_key TEXT UNIQUE,          -- stored before any work starts
    fingerprint     TEXT NOT NULL,        -- sha256 of the request body
    input           TEXT NOT NULL,
    callback_url    TEXT,
    state           TEXT NOT NULL DEFAULT 'accepted'
        CHECK (state IN ('accepted', 'running', 'succeeded', 'failed', 'cancelled')),
    result          TEXT,
    owner           TEXT,                 -- the process running it
    lease_until     REAL NOT NULL DEFAULT 0,  -- its claim, renewed while it runs
    created_at      REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS callbacks (    -- an outbox: callbacks owed to clients
    job_id     TEXT PRIMARY KEY REFERENCES jobs,
    webhook_id TEXT NOT NULL,
    url        TEXT NOT NULL,
    body       BLOB NOT NULL,
    state      TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0    -- next attempt, or a sender's lease end
);
"""
# --8<-- [end:server-schema]


def _parse_job_request(body: bytes) -> tuple[Any, str | None]:
    """Validate before accepting: a JSON object with ``input``, maybe a callback."""
    try:
        data = json.loads(body)
    except ValueError as error:
        raise RequestError(400, "the body is not JSON") from error
    if not isinstance(data, dict) or "input" not in data:
        raise RequestError(400, 'the body must be an object with "input"')
    callback = data.get("callback_url")
    if callback is not None and not (
        isinstance(callback, str) and urlsplit(callback).scheme in ("http", "https")
    ):
        raise RequestError(400, "callback_url must be an http(s) URL")
    return data["input"], callback


def parse_key(header: str | None) -> str | None:
    """The key from an ``Idempotency-Key`` header, bare or as a quoted sf-string.

    Raises:
        RequestError: 400 for a key that is empty, too long or has characters
            outside visible ASCII.
    """
    if header is None:
        return None
    key = header.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not _KEY.fullmatch(key):
        raise RequestError(
            400, f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} characters"
        )
    return key


class JobService:
    """Accepts jobs, runs them on worker threads and reports on them.

    Args:
        path: The SQLite file; created with its table if missing.
        work: What a job does.
        secret: Signs callbacks (``whsec_...``).
        workers: Worker threads.
        require_key: Reject a POST without ``Idempotency-Key`` with 400.
        callback_attempts: Deliveries tried per callback before giving up;
            the client still learns the outcome by polling.
        callback_timeout: Seconds per callback attempt.
        callback_retry: Seconds before the second attempt; doubles after.
        lease: Seconds a process's claim on a running job lasts. It renews the
            claim every third of that while the work runs; another process
            takes the job over only once the claim has run out.
    """

    def __init__(
        self,
        path: str | Path,
        work: Work,
        *,
        secret: str,
        workers: int = 2,
        require_key: bool = True,
        callback_attempts: int = 3,
        callback_timeout: float = 5.0,
        callback_retry: float = 0.05,
        lease: float = 30.0,
    ) -> None:
        self.path = str(path)
        self._work = work
        self._secret = secret
        self._require_key = require_key
        self._callback_attempts = callback_attempts
        self._callback_timeout = callback_timeout
        self._callback_retry = callback_retry
        self._lease = lease
        self.owner = uuid.uuid4().hex  # this process, in the jobs it claims
        self._outbox = threading.Event()  # a callback row was committed
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stop = threading.Event()
        self._busy = threading.Condition()
        self._pending = 0  # jobs queued or running in this process
        self.callbacks: Counter[str] = Counter()  # delivered / failed
        with closing(self.connect()) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SERVER_SCHEMA)
        self._threads = [
            threading.Thread(target=self._worker, name=f"job-worker-{n}", daemon=True)
            for n in range(workers)
        ]
        self._threads.append(
            threading.Thread(target=self._relay, name="callback-relay", daemon=True)
        )
        self._threads.append(
            threading.Thread(target=self._heartbeat, name="job-lease", daemon=True)
        )
        for thread in self._threads:
            thread.start()
        self._resume()

    def connect(self) -> sqlite3.Connection:
        """A new connection in autocommit mode; transactions are explicit."""
        return sqlite3.connect(self.path, timeout=5.0, isolation_level=None)

    # --8<-- [start:accept]
    def accept(self, body: bytes, key: str | None) -> Accepted:
        """Create a job, or map a repeated POST to the job its key created.

        Raises:
            RequestError: 400 for a bad body or a missing key, 422 when the key
                was used before with a different body.
        """
        job_input, callback_url = _parse_job_request(body)
        if key is None and self._require_key:
            raise RequestError(400, "Idempotency-Key is required")
        fingerprint = hashlib.sha256(body).hexdigest()
        job_id = uuid.uuid4().hex
        with closing(self.connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")  # one writer: lookup and insert are atomic
            try:
                seen = conn.execute(
                    "SELECT id, fingerprint FROM jobs WHERE idempotency_key = ?", (key,)
                ).fetchone()
                if seen is None:
                    conn.execute(
                        "INSERT INTO jobs (id, idempotency_key, fingerprint, input,"
                        " callback_url, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            job_id,
                            key,
                            fingerprint,
                            json.dumps(job_input),
                            callback_url,
                            time.time(),
                        ),
                    )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        if seen is not None:
            if seen[1] != fingerprint:
                raise RequestError(422, "Idempotency-Key was used with another body")
            return Accepted(seen[0], replayed=True)
        self._enqueue(job_id)  # only now: the key and the job are committed
        return Accepted(job_id, replayed=False)

    # --8<-- [end:accept]

    def status(self, job_id: str) -> JobStatus | None:
        """The job's state and result (a JSON value), or None if there is no job."""
        with closing(self.connect()) as conn:
            row = conn.execute(
                "SELECT state, result FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
        if row is None:
            return None
        return JobStatus(job_id, row[0], None if row[1] is None else json.loads(row[1]))

    # --8<-- [start:cancel]
    def cancel(self, job_id: str) -> str | None:
        """Cancel a job that has not finished; return its state afterwards.

        Cancelling is a guarded transition: it wins only while the job is
        ``accepted`` or ``running``. A running job's result is then discarded,
        because the worker's own transition to ``succeeded`` no longer matches.
        Returns None if there is no such job.
        """
        with closing(self.connect()) as conn:
            conn.execute(
                "UPDATE jobs SET state = 'cancelled'"
                " WHERE id = ? AND state IN ('accepted', 'running')",
                (job_id,),
            )
            row = conn.execute("SELECT state FROM jobs WHERE id = ?", (job_id,))
            found = row.fetchone()
        return None if found is None else str(found[0])

    # --8<-- [end:cancel]

    # --8<-- [start:worker]
    def _run(self, job_id: str) -> None:
        now = time.time()
        with closing(self.connect()) as conn:  # new, or its owner's lease ran out
            claimed = conn.execute(
                "UPDATE jobs SET state = 'running', owner = ?, lease_until = ?"
                " WHERE id = ? AND (state = 'accepted'"
                "  OR (state = 'running' AND lease_until < ?))"
                " RETURNING input, idempotency_key, callback_url",
                (self.owner, now + self._lease, job_id, now),
            ).fetchone()
        if claimed is None:
            return  # cancelled, finished, or running in a live process
        job_input, key, callback_url = claimed
        try:
            state, result = "succeeded", self._work(json.loads(job_input))
        except Exception as error:
            log.exception("job %s failed", job_id)
            state, result = "failed", {"error": type(error).__name__}
        self._finish(job_id, key, callback_url, state, result)

    def _finish(
        self, job_id: str, key: str | None, url: str | None, state: str, result: Any
    ) -> None:
        """Record the outcome and the callback it owes in one transaction."""
        body = _json_body(
            {
                "type": f"job.{state}",
                "job_id": job_id,
                "idempotency_key": key,
                "state": state,
            }
        )
        with closing(self.connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:  # 0 rows: cancelled, or our lease ran out and a peer took it
                finished = conn.execute(
                    "UPDATE jobs SET state = ?, result = ?, owner = NULL"
                    " WHERE id = ? AND state = 'running' AND owner = ?",
                    (state, json.dumps(result), job_id, self.owner),
                ).rowcount
                if finished and url:
                    conn.execute(
                        "INSERT INTO callbacks (job_id, webhook_id, url, body)"
                        " VALUES (?, ?, ?, ?)",
                        (job_id, f"{job_id}.{state}", url, body),
                    )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        self._outbox.set()  # wake the relay

    # --8<-- [end:worker]

    # --8<-- [start:notify]
    def _deliver_one(self) -> bool:
        """Claim one due callback with a lease, send it, record the outcome.

        Returns False when no callback is due. The row is committed with the
        job's result, so a crash at any point leaves it for the next relay.
        """
        now = time.time()
        with closing(self.connect()) as conn:
            row = conn.execute(
                "UPDATE callbacks SET attempts = attempts + 1, not_before = ?"
                " WHERE job_id = (SELECT job_id FROM callbacks"
                "  WHERE state = 'pending' AND not_before <= ?"
                "  ORDER BY not_before LIMIT 1)"
                " RETURNING job_id, webhook_id, url, body, attempts",
                (now + 2 * self._callback_timeout, now),
            ).fetchone()
        if row is None:
            return False
        job_id, webhook_id, url, body, attempts = row
        status = self._post_callback(url, webhook_id, body)
        refused = 400 <= status < 500 and status not in (408, 429)
        if 200 <= status < 300:
            state, outcome = "delivered", "delivered"
        elif refused or attempts >= self._callback_attempts:
            state, outcome = "failed", "failed"
            log.warning("callback for job %s not delivered to %s", job_id, url)
        else:  # endpoint down or too slow: try again later
            state, outcome = "pending", ""
        with closing(self.connect()) as conn:
            conn.execute(
                "UPDATE callbacks SET state = ?, not_before = ?"
                " WHERE job_id = ? AND attempts = ?",  # still our claim
                (
                    state,
                    now + self._callback_retry * 2 ** (attempts - 1),
                    job_id,
                    attempts,
                ),
            )
        with self._busy:
            if outcome:
                self.callbacks[outcome] += 1
            self._busy.notify_all()
        return True

    def _post_callback(self, url: str, webhook_id: str, body: bytes) -> int:
        """One signed attempt; the status code, or 0 if none came back."""
        headers = {
            "Content-Type": "application/json",
            **sign_headers(self._secret, webhook_id, body),
        }
        try:
            return request(
                "POST", url, body=body, headers=headers, timeout=self._callback_timeout
            ).status
        except (OSError, http.client.HTTPException):
            return 0

    # --8<-- [end:notify]

    def _relay(self) -> None:
        while not self._stop.is_set():
            self._outbox.clear()  # a commit after this wakes the wait below
            try:
                if self._deliver_one():
                    continue
                delay = self._next_callback_in()
            except sqlite3.Error:
                log.exception("callback outbox unavailable; retrying")
                delay = 1.0
            self._outbox.wait(delay)

    def _next_callback_in(self, longest: float = 1.0) -> float:
        with closing(self.connect()) as conn:
            (due,) = conn.execute(
                "SELECT min(not_before) FROM callbacks WHERE state = 'pending'"
            ).fetchone()
        return longest if due is None else min(longest, max(0.0, due - time.time()))

    # --8<-- [start:lease]
    def _heartbeat(self) -> None:
        """Renew this process's claims; pick up jobs whose owner went silent."""
        while not self._stop.wait(self._lease / 3):
            now = time.time()
            try:
                with closing(self.connect()) as conn:
                    conn.execute(
                        "UPDATE jobs SET lease_until = ?"
                        " WHERE owner = ? AND state = 'running'",
                        (now + self._lease, self.owner),
                    )
                    orphans = conn.execute(
                        "SELECT id FROM jobs"
                        " WHERE state = 'running' AND lease_until < ?",
                        (now,),
                    ).fetchall()
            except sqlite3.Error:
                log.exception("cannot renew job leases")
                continue
            for (job_id,) in orphans:
                self._enqueue(job_id)  # the claim in _run decides who runs it

    # --8<-- [end:lease]

    def _enqueue(self, job_id: str) -> None:
        with self._busy:
            self._pending += 1
        self._queue.put(job_id)

    def _worker(self) -> None:
        while (job_id := self._queue.get()) is not None:
            try:
                if not self._stop.is_set():  # stopping: leave it for the next start
                    self._run(job_id)
            except Exception:
                log.exception("worker failed on job %s", job_id)
            finally:
                with self._busy:
                    self._pending -= 1
                    self._busy.notify_all()

    def _resume(self) -> None:
        """Queue what nobody runs: jobs never started, or whose claim ran out.

        A job another live process is running keeps its lease and is left
        alone. Callbacks owed from before are in the outbox; the relay sends
        them. Work runs at least once.
        """
        with closing(self.connect()) as conn:
            rows = conn.execute(
                "SELECT id FROM jobs WHERE state = 'accepted'"
                " OR (state = 'running' AND lease_until < ?) ORDER BY created_at",
                (time.time(),),
            ).fetchall()
        for (job_id,) in rows:
            self._enqueue(job_id)
        self._outbox.set()

    def drain(self, timeout: float) -> bool:
        """Wait until no job is queued or running here and no callback is
        pending; False on timeout."""
        with self._busy:
            return self._busy.wait_for(
                lambda: self._pending == 0 and not self._callbacks_pending(), timeout
            )

    def _callbacks_pending(self) -> bool:
        with closing(self.connect()) as conn:
            row = conn.execute(
                "SELECT 1 FROM callbacks WHERE state = 'pending' LIMIT 1"
            ).fetchone()
        return row is not None

    def close(self, timeout: float = 5.0) -> None:
        """Stop the threads; queued jobs stay ``accepted`` for the next start,
        undelivered callbacks stay in the outbox."""
        self._stop.set()
        self._outbox.set()
        for _ in range(len(self._threads) - 2):  # one None per worker
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout)


# --------------------------------------------------------------------------- #
# The server's HTTP interface
# --------------------------------------------------------------------------- #


class _Handler(BaseHTTPRequestHandler):
    timeout = 10.0  # seconds a slow client may take per socket operation
    server: _JobHTTPServer

    # --8<-- [start:endpoint]
    def do_POST(self) -> None:
        if self.path != "/jobs":
            return self._send(404, {"error": "not found"})
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            return self._send(400, {"error": "Content-Length missing or too large"})
        body = self.rfile.read(int(length))
        service = self.server.service
        try:
            key = parse_key(self.headers.get("Idempotency-Key"))
            accepted = service.accept(body, key)
        except RequestError as error:
            return self._send(error.status, {"error": str(error)})
        except sqlite3.Error:
            log.exception("cannot store the job")
            return self._send(503, {"error": "try again"}, {"Retry-After": "1"})
        self._send(
            202,
            {"job_id": accepted.job_id, "state": "accepted"},
            {
                "Location": f"/status/{accepted.job_id}",
                "Retry-After": str(self.server.retry_after),
            },
        )

    # --8<-- [end:endpoint]

    # --8<-- [start:status]
    def do_GET(self) -> None:
        kind, _, job_id = self.path.strip("/").partition("/")
        found = self.server.service.status(job_id) if "/" not in job_id else None
        if kind not in ("status", "results") or found is None:
            return self._send(404, {"error": "no such job"})
        if kind == "results":
            if found.state != "succeeded":
                return self._send(404, {"error": f"no result: job is {found.state}"})
            return self._send(200, found.result)
        if found.state == "succeeded":  # 303: the client GETs the result
            return self._send(
                303, {"state": "succeeded"}, {"Location": f"/results/{job_id}"}
            )
        extra = {}
        if found.state not in FINAL_STATES:  # how long to wait before asking again
            extra["Retry-After"] = str(self.server.retry_after)
        body = {"job_id": job_id, "state": found.state}
        if found.state == "failed":
            body["error"] = found.result
        self._send(200, body, extra)

    # --8<-- [end:status]

    def do_DELETE(self) -> None:
        kind, _, job_id = self.path.strip("/").partition("/")
        state = self.server.service.cancel(job_id) if kind == "status" else None
        if state is None:
            return self._send(404, {"error": "no such job"})
        status = 200 if state == "cancelled" else 409  # 409: it already finished
        self._send(status, {"job_id": job_id, "state": state})

    def _send(
        self, status: int, data: Any, headers: Mapping[str, str] | None = None
    ) -> None:
        payload = _json_body(data)
        try:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            log.info("client went away before the %d answer", status)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class _JobHTTPServer(ThreadingHTTPServer):
    daemon_threads = False  # server_close() waits for requests in flight
    service: JobService
    retry_after: int


class JobServer(BackgroundServer):
    """`JobService` over HTTP on a thread; a context manager that also closes
    the service.

    Args:
        service: The jobs.
        retry_after: Seconds in ``Retry-After`` while a job is not finished.
        host: Interface to listen on; port 0 picks a free port.
    """

    def __init__(
        self,
        service: JobService,
        *,
        retry_after: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.service = service
        httpd = _JobHTTPServer((host, port), _Handler)
        httpd.service = service
        httpd.retry_after = retry_after
        super().__init__(httpd)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        super().__exit__(exc_type, exc, tb)
        self.service.close()


# --------------------------------------------------------------------------- #
# The client
# --------------------------------------------------------------------------- #


class SubmitError(Exception):
    """The server refused the request, or no attempt got an answer."""


class Cancelled(Exception):
    """The client was closed while it waited."""


# --8<-- [start:client-schema]
CLIENT_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    key        TEXT PRIMARY KEY,   -- Idempotency-Key, also the correlation id
    job_id     TEXT UNIQUE,        -- known once the 202 (or the callback) arrives
    status_url TEXT,
    state      TEXT NOT NULL DEFAULT 'pending',
    created_at REAL NOT NULL
);
"""
# --8<-- [end:client-schema]


class JobClient:
    """Starts jobs and learns their outcome by callback or by polling.

    Args:
        base_url: The job server, e.g. ``http://127.0.0.1:8000``.
        path: The client's SQLite file.
        callback_url: Where the server should send the callback, or None to
            rely on polling alone.
        timeout: Seconds per HTTP request.
        attempts: POST attempts, all with the same ``Idempotency-Key``.
        max_delay: Longest wait between two polls, whatever ``Retry-After`` says.
    """

    def __init__(
        self,
        base_url: str,
        path: str | Path,
        *,
        callback_url: str | None = None,
        timeout: float = 5.0,
        attempts: int = 3,
        max_delay: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.path = str(path)
        self.callback_url = callback_url
        self.callbacks: Counter[str] = Counter()  # matched / duplicate / unknown
        self.polls: list[str] = []  # one line per status answer, for reports
        self._timeout = timeout
        self._attempts = attempts
        self._max_delay = max_delay
        self._stop = threading.Event()
        self._count = threading.Lock()
        with closing(self.connect()) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(CLIENT_SCHEMA)

    def connect(self) -> sqlite3.Connection:
        """A new connection in autocommit mode."""
        return sqlite3.connect(self.path, timeout=5.0, isolation_level=None)

    # --8<-- [start:submit]
    def submit(self, job_input: Any) -> str:
        """Start a job; return its key, the client's correlation id.

        The key is committed before the first byte goes out, so a callback
        that beats the ``202`` finds a row to land in.
        """
        key = str(uuid.uuid4())
        with closing(self.connect()) as conn:
            conn.execute(
                "INSERT INTO requests (key, created_at) VALUES (?, ?)",
                (key, time.time()),
            )
        body = _json_body({"input": job_input, "callback_url": self.callback_url})
        job_id, status_url = self._post(body, key)
        self._record_accepted(key, job_id, status_url)
        return key

    def _record_accepted(self, key: str, job_id: str, status_url: str) -> None:
        with closing(self.connect()) as conn:  # the state is left alone:
            conn.execute(  # a callback may already have finished it
                "UPDATE requests SET job_id = ?, status_url = ? WHERE key = ?",
                (job_id, status_url, key),
            )

    # --8<-- [end:submit]

    # --8<-- [start:retry-post]
    def _post(self, body: bytes, key: str | None) -> tuple[str, str]:
        """POST until a 202 comes back, with the same key every time."""
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Idempotency-Key"] = f'"{key}"'  # an sf-string, as drafted
        for attempt in range(self._attempts):
            try:
                answer = request(
                    "POST",
                    f"{self.base_url}/jobs",
                    body=body,
                    headers=headers,
                    timeout=self._timeout,
                )
            except (OSError, http.client.HTTPException) as error:
                # A timeout says nothing about whether the job exists.
                log.info("POST attempt %d failed: %r", attempt + 1, error)
            else:
                if answer.status == 202:
                    location = urljoin(self.base_url + "/", answer.headers["location"])
                    return str(answer.json()["job_id"]), location
                if answer.status < 500:
                    raise SubmitError(f"{answer.status}: {answer.body.decode()}")
            if attempt + 1 < self._attempts:
                self._sleep(min(0.1 * 2**attempt, self._max_delay))
        raise SubmitError(f"no answer after {self._attempts} attempts")

    # --8<-- [end:retry-post]

    # --8<-- [start:on-callback]
    def on_callback(self, event: Mapping[str, Any]) -> str:
        """Apply a verified callback: ``matched``, ``duplicate`` or ``unknown``."""
        key, state = str(event.get("idempotency_key")), str(event.get("state"))
        if state not in FINAL_STATES:
            raise ValueError(f"unexpected state {state!r}")
        with closing(self.connect()) as conn:
            moved = conn.execute(
                "UPDATE requests SET state = ?, job_id = coalesce(job_id, ?)"
                " WHERE key = ? AND state = 'pending'",
                (state, str(event.get("job_id")), key),
            ).rowcount
            known = (
                moved
                or conn.execute(
                    "SELECT 1 FROM requests WHERE key = ?", (key,)
                ).fetchone()
            )
        outcome = "matched" if moved else "duplicate" if known else "unknown"
        with self._count:
            self.callbacks[outcome] += 1
        return outcome

    # --8<-- [end:on-callback]

    def state(self, key: str) -> str | None:
        """The request's state as the client knows it, or None if unknown."""
        with closing(self.connect()) as conn:
            row = conn.execute(
                "SELECT state FROM requests WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else str(row[0])

    # --8<-- [start:wait]
    def wait(self, key: str, *, timeout: float) -> str:
        """Poll the status resource until the job ends; return its final state.

        A callback that lands meanwhile ends the wait at the next check. Waits
        as long as ``Retry-After`` says, capped at ``max_delay``.

        Raises:
            TimeoutError: The job did not finish within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while (state := self.state(key)) == "pending":
            answer = request("GET", self._status_url(key), timeout=self._timeout)
            self.polls.append(f"{answer.status} {answer.json()['state']}")
            if answer.status == 303:
                state = "succeeded"
            elif answer.status == 200 and answer.json()["state"] in FINAL_STATES:
                state = answer.json()["state"]
            if state in FINAL_STATES:
                self._finish(key, state)
                continue
            delay = min(
                retry_after(answer.headers.get("retry-after"), 1.0), self._max_delay
            )
            if time.monotonic() + delay > deadline:
                raise TimeoutError(f"job {key} still {state} after {timeout} s")
            self._sleep(delay)
        if state is None:
            raise KeyError(key)
        return state

    # --8<-- [end:wait]

    def _finish(self, key: str, state: str) -> None:
        with closing(self.connect()) as conn:  # the same guarded transition
            conn.execute(
                "UPDATE requests SET state = ? WHERE key = ? AND state = 'pending'",
                (state, key),
            )

    def _status_url(self, key: str) -> str:
        with closing(self.connect()) as conn:
            row = conn.execute(
                "SELECT status_url, job_id FROM requests WHERE key = ?", (key,)
            ).fetchone()
        if row is None or (row[0] is None and row[1] is None):
            raise KeyError(f"no job is known for {key}")
        return str(row[0] or f"{self.base_url}/status/{row[1]}")

    # --8<-- [start:result]
    def result(self, key: str) -> Any:
        """Fetch a succeeded job's result: the status answers 303, then GET it."""
        answer = request("GET", self._status_url(key), timeout=self._timeout)
        if answer.status != 303:
            raise LookupError(f"job is {answer.json()['state']}, no result")
        target = urljoin(self._status_url(key), answer.headers["location"])
        return request("GET", target, timeout=self._timeout).json()

    # --8<-- [end:result]

    def _sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise Cancelled("the client is closing")

    def close(self) -> None:
        """Interrupt waits in progress; they raise `Cancelled`."""
        self._stop.set()


# --8<-- [start:record-after]
class RecordAfterResponseClient(JobClient):
    """Anti-pattern: writes the request down only once the 202 has arrived."""

    def submit(self, job_input: Any) -> str:
        key = str(uuid.uuid4())
        body = _json_body({"input": job_input, "callback_url": self.callback_url})
        job_id, status_url = self._post(body, key)
        self._record_accepted(key, job_id, status_url)
        return key

    def _record_accepted(self, key: str, job_id: str, status_url: str) -> None:
        with closing(self.connect()) as conn:  # a callback before this: unknown
            conn.execute(
                "INSERT INTO requests (key, job_id, status_url, created_at)"
                " VALUES (?, ?, ?, ?)",
                (key, job_id, status_url, time.time()),
            )


# --8<-- [end:record-after]


# --8<-- [start:keyless]
class KeylessClient(JobClient):
    """Anti-pattern: retries the POST, but without an ``Idempotency-Key``."""

    def _post(self, body: bytes, key: str | None) -> tuple[str, str]:
        return super()._post(body, None)  # a retry looks like a new request


# --8<-- [end:keyless]


class _CallbackHandler(BaseHTTPRequestHandler):
    timeout = 10.0
    server: _CallbackHTTPServer

    # --8<-- [start:receiver]
    def do_POST(self) -> None:
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            return self._answer(400)
        body = self.rfile.read(int(length))  # verify the raw bytes
        try:
            verify_headers(self.server.secret, dict(self.headers.items()), body)
            outcome = self.server.client.on_callback(json.loads(body))
        except SignatureError:
            return self._answer(401)
        except (ValueError, AttributeError):
            return self._answer(400)
        except sqlite3.Error:
            log.exception("cannot store the callback")
            return self._answer(503)  # the sender tries again
        self._answer(404 if outcome == "unknown" else 204)

    # --8<-- [end:receiver]

    def _answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class _CallbackHTTPServer(ThreadingHTTPServer):
    daemon_threads = False
    client: JobClient
    secret: str


class CallbackReceiver(BackgroundServer):
    """The client's callback endpoint on a thread; a context manager.

    Args:
        client: Applies each verified callback.
        secret: The server's signing secret.
        host: Interface to listen on; port 0 picks a free port.
    """

    def __init__(
        self, client: JobClient, secret: str, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        httpd = _CallbackHTTPServer((host, port), _CallbackHandler)
        httpd.client = client
        httpd.secret = secret
        super().__init__(httpd, "/callbacks")
