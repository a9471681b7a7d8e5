"""HTTP on the standard library: one request, ``Retry-After``, a server on a
thread."""

from __future__ import annotations

import email.utils
import http.client
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

__all__ = [
    "MAX_BODY_BYTES",
    "BackgroundServer",
    "Headers",
    "Response",
    "json_body",
    "request",
    "retry_after",
]

MAX_BODY_BYTES = 1 << 20

Headers = Mapping[str, str]


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


def json_body(data: Any) -> bytes:
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
