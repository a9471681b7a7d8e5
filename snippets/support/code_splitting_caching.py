"""Harness of the caching-split-assets page: a caching host and two visits.

:func:`serve_cached` serves a build on 127.0.0.1 with the ``Cache-Control``
header a *policy* chooses per path, an ``ETag`` (a hash of the body) on every
file and ``304 Not Modified`` for a matching ``If-None-Match``. It logs each
request with its status.

:func:`visit` opens the app in a Chromium tab, opens a lazily loaded route and
records where every response came from, as the DevTools protocol reports it
(``Network.responseReceived``: ``response.fromDiskCache``; the memory cache
through ``Network.requestServedFromCache``), and what the host answered.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from snippets.support.http_servers import serving

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

__all__ = [
    "APP",
    "PACKAGE",
    "CachingHost",
    "Fetched",
    "Policy",
    "build_app",
    "change",
    "scripts",
    "serve_cached",
    "visit",
    "webpack_options",
]

Policy = Callable[[str], str]
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
}


@dataclass
class CachingHost:
    """A served folder, its header policy and the requests it answered."""

    url: str
    root: Path
    policy: Policy
    log: list[tuple[str, int]] = field(default_factory=list)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answered(self) -> list[tuple[str, int]]:
        with self.lock:
            return list(self.log)

    def clear(self) -> None:
        with self.lock:
            self.log.clear()


class _Handler(http.server.BaseHTTPRequestHandler):
    host: CachingHost
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        route = unquote(urlsplit(self.path).path)
        if route.endswith("/"):
            route += "index.html"
        path = (self.host.root / route.lstrip("/")).resolve()
        inside = path.is_relative_to(self.host.root.resolve())
        if not (inside and path.is_file()):
            self._send(route, 404, b"Not Found\n", {"Content-Type": "text/plain"})
            return
        body = path.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        headers = {
            "Content-Type": TYPES.get(path.suffix, "application/octet-stream"),
            "Cache-Control": self.host.policy(route),
            "ETag": etag,
        }
        if self.headers.get("If-None-Match") == etag:
            self._send(route, 304, b"", headers)
        else:
            self._send(route, 200, body, headers)

    def _send(
        self, route: str, status: int, body: bytes, headers: dict[str, str]
    ) -> None:
        # Logged before the answer goes out: once the browser has it, the
        # test may read the log (logged after, the last answer could be missing).
        with self.host.lock:
            self.host.log.append((route, status))
            self.host.headers[route] = headers
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


@contextlib.contextmanager
def serve_cached(root: Path, policy: Policy) -> Iterator[CachingHost]:
    """Serve ``root`` on a free port of 127.0.0.1 with ``policy``'s headers."""
    host = CachingHost(url="", root=root, policy=policy)
    handler = type("CachingHandler", (_Handler,), {"host": host})
    server = _Server(("127.0.0.1", 0), handler)
    host.url = f"http://127.0.0.1:{server.server_address[1]}/"
    with serving(server):
        yield host


@dataclass
class Fetched:
    """One visit: where each file came from, and what the route showed.

    ``sources`` maps a path to the host's status when the request reached the
    host (``"200"``, ``"304"``, ``"404"``), else to where Chromium took the
    response from (``"disk cache"``, ``"memory cache"``).
    """

    sources: dict[str, str]
    result: str
    headers: dict[str, dict[str, str]]

    def count(self, source: str) -> int:
        return sum(1 for seen in self.sources.values() if seen == source)


def visit(
    context: BrowserContext,
    host: CachingHost,
    route: str = "#/report",
    *,
    reload: bool = False,
) -> Fetched:
    """Open the host's app in a new tab of ``context``, then ``route``.

    With ``reload`` the tab loads the app, then reloads it (the reader's F5)
    and reports only what the reload fetched.
    """
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cached: dict[str, str] = {}
    headers: dict[str, dict[str, str]] = {}
    memory: set[str] = set()

    def received(event: dict[str, Any]) -> None:
        response = event["response"]
        path = urlsplit(response["url"]).path
        path = path + "index.html" if path.endswith("/") else path
        headers[path] = {k.lower(): v for k, v in response["headers"].items()}
        if event["requestId"] in memory:
            cached[path] = "memory cache"
        elif response.get("fromDiskCache"):
            cached[path] = "disk cache"

    cdp.on("Network.requestServedFromCache", lambda e: memory.add(e["requestId"]))
    cdp.on("Network.responseReceived", received)
    host.clear()
    page.goto(host.url)
    if reload:
        page.wait_for_function("() => window.bed !== undefined")
        page.evaluate("route => bed.open(route)", route)
        cached.clear()
        host.clear()
        page.reload()
    page.wait_for_function("() => window.bed !== undefined")
    result: str = page.evaluate("route => bed.open(route)", route)
    page.close()
    sources = dict(cached)
    sources.update({path: str(status) for path, status in host.answered()})
    return Fetched(dict(sorted(sources.items())), result, headers)


# --------------------------------------------------------------------------- #
# Builds: the page's app, one-line changes, renamed files
# --------------------------------------------------------------------------- #

PACKAGE = Path(__file__).resolve().parents[1] / "code_splitting"
PACKAGE = PACKAGE / "caching_split_assets"
APP = PACKAGE / "app"
HELP_ROUTE = """import { label } from "../shared/format.js";

export function render() {
  return label("help", __RELEASE__);
}
"""


def webpack_options() -> dict[str, dict[str, Any]]:
    """The ``optimization`` objects that optimization.js exports, by name."""
    script = "import(process.argv[1]).then((m) => console.log(JSON.stringify(m)))"
    run = subprocess.run(
        ["node", "-e", script, str(PACKAGE / "optimization.js")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    options: dict[str, dict[str, Any]] = json.loads(run.stdout)
    return options


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    if old not in text:
        raise ValueError(f"{old!r} is not in {path}")
    path.write_text(text.replace(old, new, 1))


def change(source: Path, kind: str) -> None:
    """Make a one-line change of ``kind`` in a copy of the app."""
    if kind == "route":  # a string in one lazily loaded route
        _edit(source / "routes" / "settings.js", 'label("settings"', 'label("Settings"')
    elif kind == "shared":  # the module both routes import
        _edit(
            source / "shared" / "format.js", "release ${release}", "release: ${release}"
        )
    elif kind == "new route":  # one more lazy route, first in the table
        (source / "routes" / "help.js").write_text(HELP_ROUTE)
        _edit(
            source / "main.js",
            "const routes = {\n",
            'const routes = {\n  "#/help": () => import("./routes/help.js"),\n',
        )
    elif kind != "none":
        raise ValueError(f"unknown change {kind!r}")


def build_app(
    bundler: str,
    into: Path,
    *,
    release: str = "v1",
    optimization: dict[str, Any] | None = None,
    kind: str = "none",
) -> Path:
    """Build a copy of the app, with a change of ``kind``, into ``into``."""
    from snippets.support import frontend

    # Always the same source folder: Vite's hashes changed with its path.
    source = into.parent / "src"
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(APP, source)
    change(source, kind)
    env = {"WEBPACK_OPTIMIZATION": json.dumps(optimization or {})}
    return frontend.build(bundler, str(source), into, release, env=env)


def scripts(build: Path) -> set[str]:
    """The build's JavaScript files, by path inside it."""
    return {path.relative_to(build).as_posix() for path in build.rglob("*.js")}
