"""The built site in a real browser: Debian's Chromium, driven by Playwright.

Every page loads with no console error, no failed request and no request to
any host but the site's own; the diagram on a pattern page renders as SVG;
search finds a pattern page from a word on it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.site.conftest import Server

pytestmark = pytest.mark.browser

# Material draws diagrams into a closed shadow root. Opening it lets the test
# look at the SVG; it changes nothing else on the page.
OPEN_SHADOW_ROOTS = """
const attach = Element.prototype.attachShadow;
Element.prototype.attachShadow = function (init) {
  return attach.call(this, { ...init, mode: "open" });
};
"""


def page_urls(server: Server) -> list[str]:
    pages = sorted(server.root.rglob("index.html"))
    return [server.url + str(p.parent.relative_to(server.root)) + "/" for p in pages]


def watch(page: Any, server: Server) -> list[str]:
    """Collect everything that would make a reader's page misbehave."""
    problems: list[str] = []
    page.on(
        "console",
        lambda m: (
            problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning")
            else None
        ),
    )
    page.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))
    page.on(
        "requestfailed",
        lambda r: problems.append(f"failed request: {r.url} ({r.failure})"),
    )

    def check_host(request: Any) -> None:
        parts = urlsplit(request.url)
        if (
            parts.scheme in ("http", "https", "ws", "wss")
            and parts.netloc != server.host
        ):
            problems.append(f"request to another host: {request.url}")

    page.on("request", check_host)
    page.on(
        "response",
        lambda r: (
            problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None
        ),
    )
    return problems


ALL_DIAGRAMS_RENDERED = """() => {
  const hosts = [...document.querySelectorAll('.mermaid')];
  return hosts.every(d => d.tagName === 'DIV' && d.shadowRoot
                          && d.shadowRoot.querySelector('svg'));
}"""


def test_every_page_loads_cleanly_and_only_from_the_site(
    browser: Any, site_server: Server
) -> None:
    urls = page_urls(site_server)
    assert len(urls) >= 12
    context = browser.new_context()
    context.add_init_script(OPEN_SHADOW_ROOTS)
    failures: dict[str, list[str]] = {}
    diagrams = 0
    for url in urls:
        page = context.new_page()
        problems = watch(page, site_server)
        page.goto(url, wait_until="networkidle")
        try:
            page.wait_for_function(ALL_DIAGRAMS_RENDERED, timeout=15_000)
        except Exception:
            problems.append("a diagram did not render as SVG")
        diagrams += page.locator(".mermaid").count()
        if problems:
            failures[url] = problems
        page.close()
    context.close()
    assert not failures, "\n".join(
        f"{u}\n  " + "\n  ".join(p) for u, p in failures.items()
    )
    in_html = sum(
        html.read_text().count('class="mermaid"')
        for html in site_server.root.rglob("index.html")
    )
    assert diagrams == in_html > 0, (
        f"{diagrams} diagrams rendered, {in_html} in the HTML"
    )


def test_diagram_renders_as_svg_and_library_loads_only_where_needed(
    browser: Any, site_server: Server
) -> None:
    context = browser.new_context()
    context.add_init_script(OPEN_SHADOW_ROOTS)
    page = context.new_page()
    scripts: list[str] = []
    page.on("request", lambda r: scripts.append(r.url) if "mermaid" in r.url else None)

    page.goto(site_server.url, wait_until="networkidle")
    assert scripts == [], "the home page has no diagram but loaded the library"

    page.goto(site_server.url + "lazy-loading/thread-safe-lazy-init/")
    page.wait_for_function(
        "() => [...document.querySelectorAll('div.mermaid')]"
        ".some(d => d.shadowRoot && d.shadowRoot.querySelector('svg'))",
        timeout=15_000,
    )
    raw = page.locator("pre.mermaid, code.mermaid")
    assert raw.count() == 0, "a diagram is still shown as source"
    assert any(url.endswith("assets/vendor/mermaid/mermaid.min.js") for url in scripts)
    context.close()


def test_instant_navigation_to_a_diagram_page_renders_it_offline(
    browser: Any, site_server: Server
) -> None:
    context = browser.new_context()
    context.add_init_script(OPEN_SHADOW_ROOTS)
    page = context.new_page()
    problems = watch(page, site_server)
    page.goto(site_server.url + "lazy-loading/", wait_until="networkidle")
    page.click("a[href$='thread-safe-lazy-init/']")
    page.wait_for_function(
        "() => [...document.querySelectorAll('div.mermaid')]"
        ".some(d => d.shadowRoot && d.shadowRoot.querySelector('svg'))",
        timeout=15_000,
    )
    assert not problems, "\n".join(problems)
    context.close()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("lazy initialization", "lazy-loading/thread-safe-lazy-init/"),
        ("cached_property", "lazy-loading/thread-safe-lazy-init/"),
    ],
)
def test_search_lists_the_pattern_page_first(
    browser: Any, site_server: Server, query: str, expected: str
) -> None:
    page = browser.new_page()
    page.goto(site_server.url, wait_until="networkidle")
    page.keyboard.press("/")  # the theme's shortcut: focus the search box
    page.keyboard.type(query)
    first = page.locator(".md-search-result__item a").first
    first.wait_for(timeout=10_000)
    href = first.get_attribute("href") or ""
    page.close()
    assert expected in href, f"first result for {query!r} is {href!r}"
