"""Harness of the lazy-loading-in-the-browser page: images and latest-wins.

* :func:`gallery_visit` serves the gallery (gallery.html repeated for 20
  photos, with or without ``width``/``height``) from a loopback server that
  can hold a photo's answer until the test releases it, opens it in Debian's
  Chromium at 800x600 and reports which photos were requested before and
  after scrolling, and the page's cumulative layout shift.
* :func:`rows_visit` runs the hold-the-answer search server of
  load-on-visibility (``SearchServer``) on its own event loop in a thread,
  serves rows.html and its modules at the server's origin (Playwright
  fulfils those few files from the package folder; every ``/search`` goes to
  the real server), scrolls rows into view and releases the answers in the
  order the test chooses.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import mimetypes
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from snippets.lazy_loading.load_on_visibility.server import SearchServer
from snippets.support.http_servers import serving

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Route

__all__ = [
    "PACKAGE",
    "PHOTOS",
    "WORDS",
    "Gallery",
    "Rows",
    "abort_rejections",
    "gallery_html",
    "gallery_visit",
    "rows_visit",
]

PACKAGE = (
    Path(__file__).resolve().parents[1]
    / "lazy_loading"
    / ("lazy_loading_in_the_browser")
)
PHOTOS = 20
VIEWPORT = {"width": 800, "height": 600}
WORDS = ["co", "cobalt", "con", "concrete", "concur", "concurrency", "conduct"]
WAIT_S = 10.0
_FIGURE = re.compile(r"\s*<!-- GALLERY.*?</figure>", re.S)
_SIZE = ' width="600" height="400"'


def gallery_html(*, sized: bool) -> str:
    """gallery.html with its figure repeated for every photo."""
    text = (PACKAGE / "gallery.html").read_text()
    figure = _FIGURE.search(text)
    assert figure is not None
    template = figure.group(0).split("-->", 1)[1]
    figures = "".join(
        template.replace("1.svg", f"{n}.svg").replace("Photo 1", f"Photo {n}")
        for n in range(1, PHOTOS + 1)
    )
    if not sized:
        figures = figures.replace(_SIZE, "")
    return text.replace(figure.group(0), figures)


def _photo(number: int) -> str:
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="600" height="400">'
        f'<rect width="600" height="400" fill="#{number * 12:02x}6699"/></svg>\n'
    )


# --------------------------------------------------------------------------- #
# A static host that can hold an answer
# --------------------------------------------------------------------------- #


@dataclass
class _Host:
    root: Path
    url: str = ""
    held: dict[str, threading.Event] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def release(self, path: str) -> None:
        self.held[path].set()

    def requested(self, prefix: str) -> list[str]:
        with self.lock:
            return [path for path in self.requests if path.startswith(prefix)]


class _Handler(http.server.BaseHTTPRequestHandler):
    host: _Host

    def do_GET(self) -> None:
        route = unquote(urlsplit(self.path).path)
        if route.endswith("/"):
            route += "index.html"
        with self.host.lock:
            self.host.requests.append(route)
        gate = self.host.held.get(route)
        if gate is not None:
            gate.wait(WAIT_S)
        path = (self.host.root / route.lstrip("/")).resolve()
        if path.is_relative_to(self.host.root) and path.is_file():
            body, status = path.read_bytes(), 200
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        else:
            body, status, kind = b"Not Found\n", 404, "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def _serve(root: Path, hold: tuple[str, ...] = ()) -> Iterator[_Host]:
    host = _Host(root.resolve(), held={path: threading.Event() for path in hold})
    handler = type("Handler", (_Handler,), {"host": host})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    host.url = f"http://127.0.0.1:{server.server_address[1]}/"
    with serving(server):
        try:
            yield host
        finally:
            for gate in host.held.values():
                gate.set()  # a held request must not keep shutdown waiting


@dataclass
class Gallery:
    """What one gallery visit saw."""

    requested_at_load: int
    requested_after_scroll: int
    layout_shift: float


def _photos_loaded(page: Page, count: int) -> None:
    page.wait_for_function(
        """(count) => [...document.images].slice(0, count)
             .every((img) => img.complete && img.naturalWidth > 0)""",
        arg=count,
        timeout=WAIT_S * 1000,
    )


def gallery_visit(browser: Browser, *, sized: bool) -> Gallery:
    """Open the gallery with photo 1 held, release it, then scroll to the end."""
    with tempfile.TemporaryDirectory(prefix="gallery-") as folder:
        site = Path(folder)
        (site / "photos").mkdir()
        for number in range(1, PHOTOS + 1):
            (site / "photos" / f"{number}.svg").write_text(_photo(number))
        (site / "index.html").write_text(gallery_html(sized=sized))
        (site / "layout-shift.js").write_text((PACKAGE / "layout-shift.js").read_text())
        with _serve(site, hold=("/photos/1.svg",)) as host:
            context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
            page = context.new_page()
            page.goto(host.url, wait_until="domcontentloaded")
            page.wait_for_function("() => window.layoutShift !== undefined")
            deadline = time.monotonic() + WAIT_S
            while not host.requested("/photos/1.svg") and time.monotonic() < deadline:
                page.wait_for_timeout(25)  # poll the host's log
            page.wait_for_timeout(300)  # the page is painted without photo 1
            host.release("/photos/1.svg")
            _photos_loaded(page, 1)
            page.wait_for_timeout(300)  # let other requests near the top start
            at_load = len(set(host.requested("/photos/")))
            shift = page.evaluate("() => window.layoutShift()")
            page.evaluate(
                """async () => {
                  while (scrollY + innerHeight < document.body.scrollHeight) {
                    scrollBy(0, innerHeight);
                    await new Promise((frame) => requestAnimationFrame(frame));
                  }
                }"""
            )
            _photos_loaded(page, PHOTOS)
            after = len(set(host.requested("/photos/")))
            context.close()
    return Gallery(at_load, after, round(shift, 3))


# --------------------------------------------------------------------------- #
# The rows page against the hold-the-answer search server
# --------------------------------------------------------------------------- #


ABORTING = ("by-name", "latest")  # the loaders that abort a superseded load


class _SearchThread:
    """SearchServer on an event loop of its own thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = SearchServer(WORDS)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> _SearchThread:
        self._thread.start()
        self._call(self.server.__aenter__())
        return self

    def __exit__(self, *exc: object) -> None:
        self._call(self.server.__aexit__(None, None, None))
        self._call(_drain())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(WAIT_S)
        self.loop.close()

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(WAIT_S)

    def release(self, query: str) -> None:
        self.loop.call_soon_threadsafe(self.server.release, query)

    def wait_arrived(self, query: str) -> None:
        self._call(self.server.wait_arrived(query))

    def wait_settled(self, query: str) -> None:
        self._call(self.server.wait_settled(query))


async def _drain() -> None:
    """Let the server's connection handlers finish before the loop closes."""
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    if others:
        await asyncio.wait(others, timeout=5)
    await asyncio.sleep(0)  # transports close on the next turn of the loop


@dataclass
class Rows:
    """What the rows page showed, and what the server did."""

    shown: list[str]
    failed: list[str]
    panel: str
    arrived: list[str]
    answered: list[str]
    aborted: list[str]


def _fulfil_from_package(route: Route) -> None:
    name = urlsplit(route.request.url).path.rsplit("/", 1)[-1]
    path = PACKAGE / name
    kind = "text/html" if name.endswith(".html") else "text/javascript"
    route.fulfill(status=200, content_type=kind, body=path.read_text())


@contextlib.contextmanager
def _rows_page(browser: Browser, loader: str) -> Iterator[tuple[Page, _SearchThread]]:
    with _SearchThread() as search:
        context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
        page = context.new_page()
        page.route(f"{search.server.url}app/**", _fulfil_from_package)
        page.goto(f"{search.server.url}app/rows.html?loader={loader}")
        page.wait_for_function("() => window.ready === true")
        try:
            yield page, search
        finally:
            context.close()


def rows_visit(browser: Browser, loader: str, order: tuple[str, str]) -> Rows:
    """Row "co" is visible; scroll to "con"; answer in ``order``."""
    with _rows_page(browser, loader) as (page, search):
        search.wait_arrived("co")
        page.evaluate("() => document.querySelectorAll('section')[1].scrollIntoView()")
        search.wait_arrived("con")
        if loader in ABORTING:
            # Chromium closes the aborted request's connection on its own
            # time; answers are released once the server has seen it go.
            search.wait_settled("co")
        for query in order:
            search.release(query)
            search.wait_settled(query)
        page.wait_for_function("() => window.shown.length + window.failed.length >= 1")
        page.wait_for_timeout(200)  # a late answer would land now; it must not
        seen = page.evaluate("() => ({shown: window.shown, failed: window.failed})")
        panel = page.inner_text("#panel")
        server = search.server
        return Rows(
            seen["shown"],
            seen["failed"],
            panel,
            list(server.arrived),
            list(server.answered),
            list(server.aborted),
        )


def abort_rejections(browser: Browser) -> list[str]:
    """What a fetch rejects with after abort(), abort(reason)."""
    with _rows_page(browser, "latest") as (page, _):
        results: list[str] = []
        for call in (
            "rejectionOf()",
            "rejectionOf(new Error('superseded'))",
            "rejectionOf(new DOMException('superseded', 'AbortError'))",
        ):
            results.append(
                f"controller.abort({call[len('rejectionOf(') : -1]}) -> "
                + page.evaluate(
                    f"() => import('./abort-reason.js').then((m) => m.{call})"
                )
            )
        return results
