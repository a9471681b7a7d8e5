"""A static host on loopback that fails the first requests for chosen paths.

Harness of the retry-dynamic-import page. :func:`serve_flaky` serves a folder
on 127.0.0.1 and counts every request it receives, by path with its query
string. A *plan* maps a path to the answers its first requests get before the
file is served:

* ``"503"``: ``503 Service Unavailable``, as an overloaded origin or CDN does;
* ``"404"``: ``404 Not Found``;
* ``"reset"``: the connection is reset before any response (TCP RST);
* ``"garbage"``: ``200`` with a JavaScript body that does not parse, as a
  truncated or rewritten response would.

Every answer carries ``Cache-Control: no-store``, so each import the browser
really sends reaches the host and is counted.
"""

from __future__ import annotations

import contextlib
import http.server
import socket
import struct
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from snippets.support.http_servers import serving

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

__all__ = [
    "PACKAGE",
    "ROUTE",
    "STORE",
    "FlakyHost",
    "build_webpack_app",
    "open_bed",
    "serve_flaky",
]

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
}
GARBAGE = b"export const = ;\n"


@dataclass
class FlakyHost:
    """The host's URL (ends with /), its failure plan and what it received."""

    url: str
    root: Path
    plan: dict[str, list[str]] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, path: str, answers: Sequence[str]) -> None:
        """The next requests for ``path`` (no query) get ``answers`` first."""
        with self.lock:
            self.plan[path] = list(answers)

    def requests(self, path: str) -> int:
        """How many requests for ``path`` arrived, with any query string."""
        with self.lock:
            return sum(n for key, n in self.counts.items() if key.split("?")[0] == path)

    def reset(self) -> None:
        with self.lock:
            self.counts.clear()
            self.plan.clear()

    def _next(self, target: str) -> str:
        with self.lock:
            self.counts[target] += 1
            answers = self.plan.get(urlsplit(target).path)
            return answers.pop(0) if answers else "serve"


class _Handler(http.server.BaseHTTPRequestHandler):
    host: FlakyHost
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        answer = self.host._next(self.path)
        if answer == "reset":
            linger = struct.pack("ii", 1, 0)  # close with RST, not FIN
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            self.close_connection = True
            self.connection.close()
            return
        route = unquote(urlsplit(self.path).path)
        path = (self.host.root / route.lstrip("/")).resolve()
        if route.endswith("/"):
            path = path / "index.html"
        found = path.is_relative_to(self.host.root.resolve()) and path.is_file()
        kind = TYPES.get(path.suffix, "application/octet-stream")
        if answer == "503":
            status, body, kind = 503, b"Service Unavailable\n", "text/plain"
        elif answer == "404" or not found:
            status, body, kind = 404, b"Not Found\n", "text/plain"
        elif answer == "garbage":
            status, body = 200, GARBAGE
        else:
            status, body = 200, path.read_bytes()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a reset connection is the point, not a failure of the host


@contextlib.contextmanager
def serve_flaky(
    root: Path, plan: Mapping[str, Sequence[str]] | None = None
) -> Iterator[FlakyHost]:
    """Serve ``root`` on a free port of 127.0.0.1 until the block ends."""
    host = FlakyHost(url="", root=root)
    for path, answers in (plan or {}).items():
        host.fail(path, answers)
    handler = type("FlakyHandler", (_Handler,), {"host": host})
    server = _Server(("127.0.0.1", 0), handler)
    host.url = f"http://127.0.0.1:{server.server_address[1]}/"
    with serving(server):
        yield host


# --------------------------------------------------------------------------- #
# The page's two test beds: plain ES modules, and a webpack build
# --------------------------------------------------------------------------- #

PACKAGE = (
    Path(__file__).resolve().parents[1] / "code_splitting" / "retry_dynamic_import"
)
ROUTE = "/site/chunks/route.js"  # the plain site's lazily imported module
STORE = "/site/chunks/store.js"  # a module with state


def open_bed(browser: Browser, url: str) -> Page:
    """A new tab (and context: no shared cache) with ``window.bed`` ready."""
    page = browser.new_context().new_page()
    page.goto(url)
    page.wait_for_function("() => window.bed !== undefined")
    return page


def build_webpack_app(into: Path) -> tuple[Path, str]:
    """Build the page's webpack app; its folder and the route chunk's path."""
    from snippets.support import frontend

    out = frontend.build("webpack", str(PACKAGE / "app"), into, "v1")
    for path in sorted(out.glob("*.js")):
        if not path.name.startswith("main.") and "route" in path.read_text():
            return out, f"/{path.name}"
    raise LookupError(f"no chunk of the route in {out}")
