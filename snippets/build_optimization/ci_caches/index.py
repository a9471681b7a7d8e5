"""A package index on 127.0.0.1 that counts what pip asks it for.

`LocalIndex` serves a folder of wheels as a simple repository API (PEP 503):
``/simple/<project>/`` lists the project's wheels, ``/files/<wheel>`` serves
one. It answers the way a package index does, with the headers an HTTP
cache needs: every page and file has an ``ETag``, a page may be kept for
ten minutes, a file for a year; a conditional request whose ETag still
matches gets ``304 Not Modified`` and no body. `LocalIndex.requests` counts
every GET by what it asked for and how it was answered.
"""

from __future__ import annotations

import hashlib
import html
import http.server
import re
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from snippets.support.http_servers import serving

__all__ = ["LocalIndex", "Request", "serve_index"]

Request = tuple[str, int]  # ("page" or "file", HTTP status)

PAGE_CACHE = "max-age=600, public"
FILE_CACHE = "max-age=31536000, immutable, public"


def canonical(name: str) -> str:
    """PEP 503's normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


class LocalIndex(http.server.ThreadingHTTPServer):
    """A simple-API index of the wheels in ``wheels``, on 127.0.0.1."""

    daemon_threads = True

    def __init__(self, wheels: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.wheels = wheels
        self.requests: Counter[Request] = Counter()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The index URL to give pip (``--index-url``)."""
        return f"http://127.0.0.1:{self.server_address[1]}/simple/"

    def count(self, kind: str, status: int) -> None:
        with self._lock:
            self.requests[kind, status] += 1

    def take(self) -> Counter[Request]:
        """The requests counted since the last call, and start again."""
        with self._lock:
            taken, self.requests = self.requests, Counter()
        return taken

    def page(self, project: str) -> bytes | None:
        wheels = sorted(
            wheel
            for wheel in self.wheels.glob("*.whl")
            if canonical(wheel.name.split("-")[0]) == project
        )
        if not wheels:
            return None
        links = "".join(
            f'<a href="/files/{html.escape(wheel.name)}#sha256='
            f'{hashlib.sha256(wheel.read_bytes()).hexdigest()}">'
            f"{html.escape(wheel.name)}</a>\n"
            for wheel in wheels
        )
        return f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n".encode()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: LocalIndex
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path.startswith("/simple/"):
            kind, cache = "page", PAGE_CACHE
            body = self.server.page(canonical(path.removeprefix("/simple/").strip("/")))
        elif path.startswith("/files/") and "/" not in path.removeprefix("/files/"):
            kind, cache = "file", FILE_CACHE
            wheel = self.server.wheels / path.removeprefix("/files/")
            body = wheel.read_bytes() if wheel.is_file() else None
        else:
            kind, cache, body = "other", "no-store", None
        if body is None:
            self.server.count(kind, 404)
            self._answer(404, {"Content-Length": "0"})
            return
        etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
        headers = {"ETag": etag, "Cache-Control": cache}
        if self.headers.get("If-None-Match") == etag:
            self.server.count(kind, 304)
            self._answer(304, headers)
            return
        self.server.count(kind, 200)
        content_type = "text/html" if kind == "page" else "application/octet-stream"
        headers |= {"Content-Type": content_type, "Content-Length": str(len(body))}
        self._answer(200, headers, body)

    def _answer(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the counts are the log."""


@contextmanager
def serve_index(wheels: Path) -> Iterator[LocalIndex]:
    """Serve ``wheels`` on 127.0.0.1 for the block; stop the server after it."""
    with serving(LocalIndex(wheels)) as index:
        yield index
