"""Harness of the resource-hints page: Chromium's view of preload and prefetch.

Each visit opens a page in Debian's Chromium with a DevTools protocol session
(``Network.enable``) and records every request the page sends: the file name,
Chromium's ``initialPriority`` and the start and end times
(``Network.requestWillBeSent``, ``Network.loadingFinished``). It also records
which scripts ran (the page's modules push their names onto ``window.ran``),
the console's warnings and errors, and the link tags in ``<head>``.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snippets.support import frontend

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

__all__ = [
    "APP",
    "HINTS",
    "PRIORITY_NAMES",
    "RACES",
    "Recorder",
    "Request",
    "Visit",
    "bundler_visit",
    "hints_visit",
    "race",
]

APP = "resource-hints"
HINTS = Path(__file__).resolve().parents[1] / "code_splitting" / "resource_hints"
# The DevTools protocol's names and the names the Network panel shows.
PRIORITY_NAMES = {
    "VeryHigh": "Highest",
    "High": "High",
    "Medium": "Medium",
    "Low": "Low",
    "VeryLow": "Lowest",
}
WARNING_WAIT_S = 10.0
# Throttling of the race: 200 kB/s down and 100 ms latency, about a slow 3G
# link; the critical script is 200 kB (about 1 s alone), the prefetch 400 kB.
THROTTLE = {
    "offline": False,
    "latency": 100,
    "downloadThroughput": 200_000,
    "uploadThroughput": 100_000,
}
CRITICAL_BYTES = 200_000
PREFETCH_BYTES = 400_000


@dataclass
class Request:
    """One request as the DevTools protocol reported it."""

    name: str
    priority: str
    kind: str
    start: float
    end: float | None = None
    cached: bool = False

    @property
    def shown_priority(self) -> str:
        """The priority as the Network panel names it."""
        return PRIORITY_NAMES.get(self.priority, self.priority)


class Recorder:
    """Every request of one page, from a DevTools protocol session."""

    def __init__(self, page: Page, *, throttle: dict[str, Any] | None = None) -> None:
        self._lock = threading.Lock()
        self._requests: dict[str, Request] = {}
        session = page.context.new_cdp_session(page)
        session.send("Network.enable")
        if throttle:
            session.send("Network.emulateNetworkConditions", throttle)
        session.on("Network.requestWillBeSent", self._sent)
        session.on("Network.loadingFinished", self._finished)
        session.on("Network.responseReceived", self._cached)

    def _sent(self, event: dict[str, Any]) -> None:
        url = event["request"]["url"]
        if not url.startswith("http"):
            return
        name = url.split("?")[0].rsplit("/", 1)[-1]
        with self._lock:
            self._requests.setdefault(
                event["requestId"],
                Request(
                    name,
                    event["request"]["initialPriority"],
                    event.get("type", ""),
                    event["timestamp"],
                ),
            )

    def _finished(self, event: dict[str, Any]) -> None:
        with self._lock:
            request = self._requests.get(event["requestId"])
            if request is not None:
                request.end = event["timestamp"]

    def _cached(self, event: dict[str, Any]) -> None:
        with self._lock:
            request = self._requests.get(event["requestId"])
            response = event["response"]
            cached = response.get("fromDiskCache") or response.get("fromPrefetchCache")
            if request is not None and cached:
                request.cached = True

    def requests(self) -> list[Request]:
        """The requests so far, in the order they started."""
        with self._lock:
            return sorted(self._requests.values(), key=lambda r: r.start)

    def named(self, name: str) -> list[Request]:
        return [r for r in self.requests() if r.name == name]


@dataclass
class Visit:
    """What a visit saw, phase by phase."""

    requests: dict[str, list[Request]] = field(default_factory=dict)
    links: dict[str, list[str]] = field(default_factory=dict)
    ran: dict[str, list[str]] = field(default_factory=dict)
    console: list[str] = field(default_factory=list)
    gets: dict[str, int] = field(default_factory=dict)


def _ran(page: Page) -> list[str]:
    ran: list[str] = page.evaluate("() => [...(window.ran ?? [])]")
    return ran


def _links(page: Page) -> list[str]:
    found: list[str] = page.evaluate(
        """() => [...document.head.querySelectorAll('link:not([rel=icon])')]
                 .map(l => `<link rel="${l.rel}"`
                   + (l.getAttribute('as') ? ` as="${l.getAttribute('as')}"` : '')
                   + ` href="${new URL(l.href).pathname}">`)"""
    )
    return found


def _wait_idle(recorder: Recorder, page: Page, timeout_s: float = 10.0) -> None:
    """Wait until every request recorded so far has finished (bounded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(r.end is not None for r in recorder.requests()):
            return
        page.wait_for_timeout(25)  # poll the recorder; not a synchronisation
    raise TimeoutError("requests still running: " + repr(recorder.requests()))


def _console(page: Page, into: list[str]) -> None:
    page.on(
        "console",
        lambda message: (
            into.append(f"{message.type}: {message.text}")
            if message.type in ("warning", "error")
            else None
        ),
    )


def hints_visit(browser: Browser, *, use_preload: bool = False) -> Visit:
    """Open hints.html, import module.js, wait for the unused-preload warning.

    With ``use_preload`` the page adds a ``<script src=preloaded.js>`` right
    after load, so the preload is used.
    """
    seen = Visit()
    with frontend.serve(HINTS) as host:
        context = browser.new_context()
        page = context.new_page()
        _console(page, seen.console)
        recorder = Recorder(page)
        page.goto(host.url + "hints.html", wait_until="load")
        _wait_idle(recorder, page)
        seen.requests["load"] = recorder.requests()
        seen.ran["load"] = _ran(page)
        if use_preload:
            page.evaluate(
                """() => new Promise((resolve) => {
                  const script = document.createElement('script');
                  script.src = 'preloaded.js';
                  script.onload = resolve;
                  document.head.append(script);
                })"""
            )
        page.evaluate("() => import('./module.js')")
        _wait_idle(recorder, page)
        seen.requests["import"] = recorder.requests()[len(seen.requests["load"]) :]
        seen.ran["import"] = _ran(page)
        # Chromium warns about an unused preload a few seconds after load.
        deadline = time.monotonic() + WARNING_WAIT_S
        while time.monotonic() < deadline and not seen.console:
            page.wait_for_timeout(100)  # poll the console; not a synchronisation
        if use_preload:  # no warning comes: wait out the same window once
            page.wait_for_timeout(4_000)
        context.close()
        for _, path, _ in host.requests:
            name = path.rsplit("/", 1)[-1]
            seen.gets[name] = seen.gets.get(name, 0) + 1
    seen.console = [frontend.normalise(text) for text in seen.console]
    return seen


# The pages of the race: (label, what <head> holds, what <body> holds).
RACES = {
    "alone": ("", ""),
    "prefetch in head": ('<link rel="prefetch" href="next.js">', ""),
    "prefetch after load": (
        "",
        '<script type="module">\n'
        'import { prefetchAfterLoad } from "./prefetch-after-load.js";\n'
        'prefetchAfterLoad("next.js");\n</script>',
    ),
}


@contextmanager
def _race_site() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="resource-hints-race-") as folder:
        site = Path(folder)
        padding = "// " + "x" * CRITICAL_BYTES + "\n"
        (site / "critical.js").write_text(padding + "window.done = true;\n")
        (site / "next.js").write_text("// " + "y" * PREFETCH_BYTES + "\n")
        shutil.copy(HINTS / "prefetch-after-load.js", site)
        yield site


def race(browser: Browser, case: str) -> list[Request]:
    """Load a page whose critical script is 200 kB, on a throttled link."""
    head, body = RACES[case]
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<link rel="icon" href="data:,"><title>race</title>{head}</head>'
        f'<body><main>race</main><script src="critical.js"></script>{body}'
        "</body></html>\n"
    )
    with _race_site() as site, frontend.serve(site) as host:
        (site / "index.html").write_text(html)
        context = browser.new_context()
        page = context.new_page()
        recorder = Recorder(page, throttle=THROTTLE)
        page.goto(host.url, wait_until="load", timeout=60_000)
        page.wait_for_function("() => window.done === true")
        if case != "alone":
            deadline = time.monotonic() + 30
            while not recorder.named("next.js") and time.monotonic() < deadline:
                page.wait_for_timeout(25)  # poll the recorder
        _wait_idle(recorder, page, timeout_s=30)
        context.close()
        return recorder.requests()


def bundler_visit(browser: Browser, build: Path) -> Visit:
    """Open a build of the test bed, then open the route, then its chart."""
    seen = Visit()
    with frontend.serve(build) as host:
        context = browser.new_context()
        page = context.new_page()
        _console(page, seen.console)
        recorder = Recorder(page)
        page.goto(host.url, wait_until="load")
        page.wait_for_function("() => window.bed !== undefined")
        done = 0
        for phase, action in (
            ("load", None),
            ("open()", "() => bed.open().then(() => undefined)"),
            ("chart()", "() => bed.chart()"),
        ):
            if action:
                page.evaluate(action)
            page.wait_for_timeout(200)  # let the runtime add hints it adds later
            _wait_idle(recorder, page)
            every = recorder.requests()
            seen.requests[phase] = every[done:]
            done = len(every)
            seen.links[phase] = _links(page)
            seen.ran[phase] = _ran(page)
        context.close()
        for _, path, _ in host.requests:
            name = path.rsplit("/", 1)[-1]
            seen.gets[name] = seen.gets.get(name, 0) + 1
    return seen
