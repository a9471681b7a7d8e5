"""The client: writes each request down before sending it, retries with the
same key, and learns the outcome by callback or by polling."""

from __future__ import annotations

import http.client
import json
import logging
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from contextlib import closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from snippets.webhook_design.async_request_reply.jobs import FINAL_STATES
from snippets.webhook_design.async_request_reply.transport import (
    MAX_BODY_BYTES,
    BackgroundServer,
    json_body,
    request,
    retry_after,
)
from snippets.webhook_design.verify_then_dedupe import VerificationError, Verifier

__all__ = [
    "CLIENT_SCHEMA",
    "CallbackReceiver",
    "Cancelled",
    "JobClient",
    "SubmitError",
]

log = logging.getLogger(__name__)


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
        body = json_body({"input": job_input, "callback_url": self.callback_url})
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
            self.server.verifier.verify(dict(self.headers.items()), body)
            outcome = self.server.client.on_callback(json.loads(body))
        except VerificationError:
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
    verifier: Verifier


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
        httpd.verifier = Verifier([secret])
        super().__init__(httpd, "/callbacks")
