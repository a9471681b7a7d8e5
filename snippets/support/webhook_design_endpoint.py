"""Loopback HTTP for the webhook-design demos and tests.

* `Receiver` is a webhook endpoint that records every request (when it
  arrived, its headers and body, how many were in flight) and answers what
  its ``answer`` function says: a status, headers, and an optional hang.
* `post_webhook` sends one signed delivery and returns the status and text.
* `serving` (from snippets/support/http_servers.py) runs a server on a thread.
"""

from __future__ import annotations

import http.client
import http.server
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import urlsplit

from snippets.support.http_servers import serving

__all__ = ["Arrival", "Receiver", "Reply", "post_webhook", "serving"]


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
                finally:
                    # Out of flight before the answer is written: once the
                    # sender reads it, it may send the next request at once,
                    # and that one must not find this one still counted.
                    receiver._done()
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender timed out and closed the connection

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output clean

        return Handler


def post_webhook(
    url: str, headers: Mapping[str, str], body: bytes, *, timeout: float = 10.0
) -> tuple[int, str]:
    """Send one delivery attempt; return the status and the response text."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        conn.request(
            "POST",
            parts.path or "/",
            body=body,
            headers={**headers, "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()
