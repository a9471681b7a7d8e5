"""Harness of the chunk-load-errors page: build two releases, deploy, visit.

A visit opens release v1 of the test bed's app (``snippets/web/chunk-load``)
in Chromium, deploys v2 with the page's :func:`publish` while the tab stays
open, then follows the link to the lazily loaded route ``#/settings``. It
records what the app's ``catch`` saw, Chromium's console errors and how many
times the document loaded (1 + reloads).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snippets.code_splitting.chunk_load_errors import publish
from snippets.support import frontend

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Route

__all__ = ["Releases", "Visit", "releases", "route_chunk", "visit"]

APP = "chunk-load"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
DEPLOYED = T0 + timedelta(hours=1)
WAIT_S = 20.0


@dataclass(frozen=True)
class Releases:
    """Two builds of the app by one bundler: v1 and v2 (other hashed names)."""

    bundler: str
    v1: Path
    v2: Path


def releases(bundler: str, into: Path) -> Releases:
    """Build v1 and v2 of the app with ``bundler`` under ``into``."""
    built = [
        frontend.build(bundler, APP, into / f"{bundler}-{name}", name)
        for name in ("v1", "v2")
    ]
    return Releases(bundler, *built)


def route_chunk(build: Path) -> str:
    """The file name of the build's chunk for the lazy route #/settings."""
    for path in sorted(build.rglob("*.js")):
        if "settings, release" in path.read_text():
            return path.name
    raise LookupError(f"no chunk of the settings route in {build}")


@dataclass
class Visit:
    """What one visit saw: the app's results, console errors, document loads."""

    results: list[str]
    console: list[str]
    loads: int
    chunk_requests: list[tuple[str, str, int]] = field(default_factory=list)
    route_chunks: frozenset[str] = frozenset()
    storage: dict[str, str] = field(default_factory=dict)


def _bed(page: Page) -> Any:
    """``window.bed`` of whichever document is current (None mid-navigation)."""
    try:
        return page.evaluate(
            "() => window.bed && {results: window.bed.results, release: bed.release}"
        )
    except Exception:  # the document went away under evaluate: a reload
        return None


@contextmanager
def _site() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="chunk-load-site-") as folder:
        yield Path(folder)


def visit(
    browser: Browser,
    built: Releases,
    *,
    fix: str = "none",
    grace: timedelta = timedelta(0),
    spa_fallback: bool = False,
    broken_v2: bool = False,
    abort_once: bool = False,
    unreachable: bool = False,
    stop_after_loads: int = 6,
    loop_expected: bool = False,
    min_loads: int = 1,
) -> Visit:
    """Open v1, deploy v2, follow the link to the lazy route; report.

    ``broken_v2`` deletes v2's own chunk of the route too (a broken release);
    ``abort_once`` makes the first request for the v1 chunk fail at the
    network level (Playwright aborts it) while nothing is deployed;
    ``unreachable`` aborts every request for it, the HEAD of a check included. With
    ``loop_expected`` the visit ends only after ``stop_after_loads`` loads
    (a page that reloads in a loop may show an error just before it unloads);
    ``min_loads`` ignores results until the document loaded that often (a
    handler that reloads and rethrows shows an error on the page it leaves).
    """
    console: list[str] = []
    loads = 0
    with _site() as site, frontend.serve(site, spa_fallback=spa_fallback) as host:
        publish(built.v1, site, "v1", grace=grace, now=T0)
        context = browser.new_context()
        page = context.new_page()

        def loaded(_: object) -> None:
            nonlocal loads
            loads += 1

        page.on("domcontentloaded", loaded)
        page.on(
            "console",
            lambda message: (
                console.append(message.text) if message.type == "error" else None
            ),
        )
        page.on("pageerror", lambda error: console.append(f"{error.name}: {error}"))
        page.goto(f"{host.url}?fix={fix}")
        page.wait_for_function("() => window.bed !== undefined")
        chunk = route_chunk(built.v1)
        if abort_once or unreachable:
            state = {"aborted": 0}

            def flaky(route: Route) -> None:
                if state["aborted"] == 0 or unreachable:
                    state["aborted"] += 1
                    route.abort("connectionreset")
                else:
                    route.continue_()

            page.route(f"**/{chunk}", flaky)
        else:
            publish(built.v2, site, "v2", grace=grace, now=DEPLOYED)
            if broken_v2:
                (site / _relative(built.v2, route_chunk(built.v2))).unlink()
        page.evaluate("() => { location.hash = '#/settings'; }")
        deadline = time.monotonic() + WAIT_S
        results: list[str] = []
        while time.monotonic() < deadline and loads < stop_after_loads:
            bed = _bed(page)
            settled = bed and bed["results"] and loads >= min_loads
            if settled and not loop_expected:
                results = list(bed["results"])
                break
            page.wait_for_timeout(25)  # poll the page; not a synchronisation
        storage = _storage(page)
        counted = loads  # about:blank below loads a document too
        if counted >= stop_after_loads:
            _stop(page)
        context.close()
        requests = [r for r in host.requests if r[1].endswith(".js")]
    chunks = frozenset({route_chunk(built.v1), route_chunk(built.v2)})
    return Visit(results, sorted(set(console)), counted, requests, chunks, storage)


def _stop(page: Page) -> None:
    """End a reload loop before closing: closing a tab mid-storm can hang.

    Every request now fails, so the next reload ends on Chromium's error page,
    where no script runs; then the tab leaves for about:blank.
    """
    page.route("**/*", lambda route: route.abort())
    try:
        page.goto("about:blank", wait_until="commit", timeout=10_000)
    except Exception:  # a navigation of the loop won the race: blank is enough
        pass


def _storage(page: Page) -> dict[str, str]:
    """The tab's sessionStorage at the end of the visit (empty mid-navigation)."""
    try:
        found: dict[str, str] = page.evaluate("() => ({...sessionStorage})")
    except Exception:  # the document went away under evaluate: a reload
        return {}
    return found


def _relative(build: Path, name: str) -> str:
    (path,) = [p for p in build.rglob(name) if p.is_file()]
    return path.relative_to(build).as_posix()
