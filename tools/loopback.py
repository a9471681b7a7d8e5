"""A built site over HTTP on 127.0.0.1, as its host would serve it.

The site tests and ``make bench`` serve built sites with :func:`serve`:

* at the path of the site's URL (``https://host/guide/`` is served at
  ``http://127.0.0.1:<port>/guide/``), so that absolute links, such as those
  of the 404 page, work as they do on the real host;
* a missing page gets the site's 404.html with status 404, as on GitHub Pages;
* with ``compress``, text is gzip-compressed as GitHub Pages sends it.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import http.server
import io
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

COMPRESSIBLE = (".html", ".css", ".js", ".mjs", ".json", ".xml", ".svg", ".txt")


@dataclass(frozen=True)
class Server:
    """A served site: its base URL (ends with /), host:port, and its folder."""

    url: str
    host: str
    root: Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class _SiteHandler(http.server.SimpleHTTPRequestHandler):
    base = "/"
    compress = False
    cache: dict[Path, bytes]

    def translate_path(self, path: str) -> str:
        route = unquote(urlsplit(path).path)
        if not route.startswith(self.base):
            return str(Path(self.directory) / ".not-in-the-site" / route.lstrip("/"))
        return super().translate_path("/" + route[len(self.base) :])

    def send_head(self) -> Any:
        path = Path(self.translate_path(self.path))
        if path.is_dir():
            path = path / "index.html"
        wants_gzip = "gzip" in self.headers.get("Accept-Encoding", "")
        if not (
            self.compress
            and wants_gzip
            and path.suffix in COMPRESSIBLE
            and path.is_file()
            and self.path.endswith(("/", path.name))
        ):
            return super().send_head()
        if path not in self.cache:
            self.cache[path] = gzip.compress(path.read_bytes(), 6)
        body = self.cache[path]
        self.send_response(200)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=600")
        self.end_headers()
        return io.BytesIO(body)

    def send_error(
        self, code: int, message: str | None = None, explain: str | None = None
    ) -> None:
        page = Path(self.directory) / "404.html"
        if code != 404 or not page.exists():
            super().send_error(code, message, explain)
            return
        body = page.read_bytes()
        self.send_response(404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ThreadingServer(http.server.ThreadingHTTPServer):
    request_queue_size = 64  # a page load opens many connections at once
    daemon_threads = True


@contextlib.contextmanager
def serve(
    site: Path, site_url: str = "/", *, compress: bool = False
) -> Iterator[Server]:
    """Serve ``site`` on a free loopback port at the path of ``site_url``."""
    base = urlsplit(site_url).path or "/"
    base = base if base.endswith("/") else base + "/"
    handler = type(
        "SiteHandler",
        (_SiteHandler,),
        {"base": base, "compress": compress, "cache": {}},
    )
    server = _ThreadingServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(site))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host = f"127.0.0.1:{server.server_address[1]}"
    try:
        yield Server(url=f"http://{host}{base}", host=host, root=site)
    finally:
        server.shutdown()
        server.server_close()
