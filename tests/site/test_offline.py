"""The offline bundle (``make offline``), unzipped and opened from file://.

The zip is built once per session by tools/offline.py, the code
behind ``make offline``, and unpacked into a temporary folder. A reader who
opens it in Chromium can move between pages, search, and see every diagram,
and the browser asks no host for anything.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tools import offline
from tools.browser import ALL_DIAGRAMS_RENDERED, OPEN_SHADOW_ROOTS

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


@pytest.fixture(scope="session")
def unzipped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The offline site, zipped by ``make offline``'s code and unzipped."""
    out = tmp_path_factory.mktemp("offline")
    bundle = offline.build(out / "site.zip", out / "build" / "concurrency-patterns")
    with zipfile.ZipFile(bundle) as opened:
        opened.extractall(out / "unzipped")
    (root,) = (out / "unzipped").iterdir()  # one folder, so unpacking is tidy
    return root


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A page that records every problem and every request to a host."""
    context = browser.new_context()
    context.add_init_script(OPEN_SHADOW_ROOTS)
    tab = context.new_page()
    tab.problems = []
    tab.on(
        "console",
        lambda m: (
            tab.problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning")
            else None
        ),
    )
    tab.on("pageerror", lambda e: tab.problems.append(f"uncaught: {e}"))
    # A request still in flight when the test opens the next page is cancelled
    # by that navigation (net::ERR_ABORTED): not something a reader sees.
    tab.on(
        "requestfailed",
        lambda r: (
            tab.problems.append(f"failed request: {r.url} ({r.failure})")
            if r.failure != "net::ERR_ABORTED"
            else None
        ),
    )
    tab.on(
        "request",
        lambda r: (
            tab.problems.append(f"request to a host: {r.url}")
            if not r.url.startswith(("file:", "data:", "blob:", "about:"))
            else None
        ),
    )
    yield tab
    context.close()


def test_the_zip_holds_one_folder_with_the_site(unzipped: Path) -> None:
    assert (unzipped / "index.html").is_file()
    assert (unzipped / "search" / "search_index.js").is_file()
    assert (unzipped / "assets" / "vendor" / "iframe-worker" / "shim.js").is_file()
    assert (unzipped / "errors.html").is_file()  # the index of error messages
    pages = [p for p in unzipped.rglob("*.html") if p.name != "404.html"]
    assert len(pages) >= 12


def test_navigation_works_from_disk(unzipped: Path, page: Any) -> None:
    page.goto((unzipped / "index.html").as_uri(), wait_until="load")
    page.click("a[href$='lazy-loading/index.html'] >> nth=0")
    page.wait_for_url("**/lazy-loading/index.html")
    page.click("article a[href$='thread-safe-lazy-init.html'] >> nth=0")
    page.wait_for_url("**/lazy-loading/thread-safe-lazy-init.html")
    assert page.locator("h1").first.inner_text().startswith("Thread-safe")
    assert not page.problems, "\n".join(page.problems)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("lazy initialization", "lazy-loading/thread-safe-lazy-init.html"),
        ("competing consumers", "message-queues/competing-consumers.html"),
        # A pasted error line (overrides/partials/on-demand.html, item 5).
        (
            "sqlalchemy.exc.MissingGreenlet: greenlet_spawn has not been called",
            "lazy-loading/sqlalchemy-async-lazy-loading.html",
        ),
    ],
)
def test_search_finds_a_page_from_disk(
    unzipped: Path, page: Any, query: str, expected: str
) -> None:
    page.goto((unzipped / "index.html").as_uri(), wait_until="load")
    page.keyboard.press("/")  # the theme's shortcut: focus the search box
    page.keyboard.type(query)
    first = page.locator(".md-search-result__item a").first
    first.wait_for(timeout=10_000)
    href = first.get_attribute("href") or ""
    assert expected in href, f"first result for {query!r} is {href!r}"
    assert not page.problems, "\n".join(page.problems)


def test_every_diagram_renders_from_disk(unzipped: Path, page: Any) -> None:
    with_diagrams = sorted(
        path
        for path in unzipped.rglob("*.html")
        if 'class="mermaid"' in path.read_text()
    )
    assert with_diagrams, "no page with a diagram"
    failures = []
    for path in with_diagrams:
        page.goto(path.as_uri(), wait_until="load")
        try:
            page.wait_for_function(ALL_DIAGRAMS_RENDERED, timeout=15_000)
        except Exception:
            failures.append(f"{path.relative_to(unzipped)}: a diagram is not drawn")
            continue
        drawn = page.evaluate(
            "() => [...document.querySelectorAll('div.mermaid')]"
            ".map(d => d.shadowRoot.textContent).join(' ')"
        )
        if "Syntax error" in drawn:
            failures.append(f"{path.relative_to(unzipped)}: mermaid says Syntax error")
    assert not failures, "\n".join(failures)
    assert not page.problems, "\n".join(page.problems)
