"""The built site in a real browser: Debian's Chromium, driven by Playwright.

Every page loads with no console error, no failed request and no request to
any host but the site's own; every diagram renders as SVG once it nears the
viewport, and a page without a diagram never loads the diagram library; the
code copy button and the copy-a-link menu put the right text on the
clipboard; the light/dark toggle works and is remembered. Search is checked in
test_search.py, accessibility in test_accessibility.py.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.site.conftest import Server
from tools.browser import ALL_DIAGRAMS_RENDERED, OPEN_SHADOW_ROOTS
from tools.links import is_redirect_page
from tools.page_checks import DOCS

__all__ = [
    "ALL_DIAGRAMS_RENDERED",
    "OPEN_SHADOW_ROOTS",
    "SECTIONS",
    "open_page",
    "section_urls",
]

pytestmark = pytest.mark.browser

# Material's bundle defines its observables on window once it has mounted the
# page's components; a test that needs the theme at work waits for this.
THEME_MOUNTED = "() => typeof window.component$ !== 'undefined'"
# Two animation frames: every IntersectionObserver has had its first look at
# the layout (observers report in the frame's rendering step).
TWO_FRAMES = """() => new Promise(done =>
  requestAnimationFrame(() => requestAnimationFrame(() => done(true))))"""


def open_page(page: Any, url: str) -> None:
    """Load ``url`` and wait until the theme has mounted the page."""
    page.goto(url, wait_until="load")
    page.wait_for_function(THEME_MOUNTED, timeout=15_000)


def reload_page(page: Any) -> None:
    page.reload(wait_until="load")
    page.wait_for_function(THEME_MOUNTED, timeout=15_000)


def page_urls(server: Server) -> list[str]:
    """Every page of the site; forwarding pages of moved pages are checked in
    tests/site/test_links.py (they leave at once, so their load is aborted)."""
    pages = sorted(
        p for p in server.root.rglob("index.html") if not is_redirect_page(p)
    )
    return [server.url + str(p.parent.relative_to(server.root)) + "/" for p in pages]


# The checks of every page take one part of the site per test, so that the test
# processes share the work (tests/conftest.py hands each part to a worker): a
# topic's folder, or "home" for the pages outside every folder.
SECTIONS = [
    "home",
    *sorted(d.name for d in DOCS.iterdir() if d.is_dir() and any(d.glob("*.md"))),
]


def section_urls(server: Server, section: str) -> list[str]:
    """The pages of one part of the site (see ``SECTIONS``)."""
    folders = [f"{server.url}{name}/" for name in SECTIONS[1:]]
    if section == "home":
        return [u for u in page_urls(server) if not u.startswith(tuple(folders))]
    return [u for u in page_urls(server) if u.startswith(f"{server.url}{section}/")]


def test_the_sections_cover_every_page(site_server: Server) -> None:
    covered = [url for name in SECTIONS for url in section_urls(site_server, name)]
    assert sorted(covered) == sorted(page_urls(site_server))
    assert all(section_urls(site_server, name) for name in SECTIONS)


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


# The diagram library loads when a diagram nears the viewport
# (overrides/partials/on-demand.html): scroll to the first one, then all render.
SCROLL_TO_FIRST_DIAGRAM = """() => {
  const first = document.querySelector('pre.mermaid, div.mermaid');
  if (first) first.scrollIntoView();
}"""

DIAGRAM_LIBRARY = "assets/vendor/mermaid/"

# "Near": within a screen below the viewport, the loader's margin.
FIRST_DIAGRAM_IS_NEAR = """() => {
  const first = document.querySelector('pre.mermaid, div.mermaid');
  return !!first && first.getBoundingClientRect().top < 2 * innerHeight;
}"""


@pytest.mark.timeout(600)
@pytest.mark.parametrize("section", SECTIONS)
def test_every_page_loads_cleanly_and_only_from_the_site(
    browser: Any, site_server: Server, section: str
) -> None:
    urls = section_urls(site_server, section)
    assert urls
    context = browser.new_context()
    context.add_init_script(OPEN_SHADOW_ROOTS)
    failures: dict[str, list[str]] = {}
    diagrams = 0
    for url in urls:
        page = context.new_page()
        problems = watch(page, site_server)
        library: list[str] = []
        page.on(
            "request",
            lambda r, seen=library: (
                seen.append(r.url) if DIAGRAM_LIBRARY in r.url else None
            ),
        )
        open_page(page, url)
        page.evaluate(TWO_FRAMES)  # the diagram loader has seen the layout
        has_diagram = page.locator(".mermaid").count() > 0
        near = page.evaluate(FIRST_DIAGRAM_IS_NEAR)
        if library and not near:
            problems.append("the diagram library loaded before any diagram was near")
        page.evaluate(SCROLL_TO_FIRST_DIAGRAM)
        try:
            page.wait_for_function(ALL_DIAGRAMS_RENDERED, timeout=15_000)
        except Exception:
            problems.append("a diagram did not render as SVG")
        diagrams += page.locator(".mermaid").count()
        if library and not has_diagram:
            problems.append(f"no diagram, but the diagram library loaded: {library[0]}")
        if problems:
            failures[url] = problems
        page.close()
    context.close()
    assert not failures, "\n".join(
        f"{u}\n  " + "\n  ".join(p) for u, p in failures.items()
    )
    in_html = sum(
        (site_server.root / url.removeprefix(site_server.url) / "index.html")
        .read_text()
        .count('class="mermaid"')
        for url in urls
    )
    assert diagrams == in_html, f"{diagrams} diagrams rendered, {in_html} in the HTML"


def test_diagram_renders_as_svg_and_library_loads_only_where_needed(
    browser: Any, site_server: Server
) -> None:
    context = browser.new_context()
    context.add_init_script(OPEN_SHADOW_ROOTS)
    page = context.new_page()
    scripts: list[str] = []
    page.on("request", lambda r: scripts.append(r.url) if "mermaid" in r.url else None)

    open_page(page, site_server.url)
    page.evaluate(TWO_FRAMES)
    assert scripts == [], "the home page has no diagram but loaded the library"

    open_page(page, site_server.url + "lazy-loading/thread-safe-lazy-init/")
    page.evaluate(TWO_FRAMES)  # the loader has seen that no diagram is near
    assert scripts == [], "the library loaded before the diagram was near"
    page.evaluate(SCROLL_TO_FIRST_DIAGRAM)
    page.wait_for_function(
        "() => [...document.querySelectorAll('div.mermaid')]"
        ".some(d => d.shadowRoot && d.shadowRoot.querySelector('svg'))",
        timeout=15_000,
    )
    raw = page.locator("pre.mermaid, code.mermaid")
    assert raw.count() == 0, "a diagram is still shown as source"
    assert any(url.endswith("mermaid/mermaid.esm.min.mjs") for url in scripts)
    assert not any(url.endswith("mermaid.min.js") for url in scripts), (
        "the single-file build is only for file://"
    )
    context.close()


def test_instant_navigation_to_a_diagram_page_renders_it_offline(
    browser: Any, site_server: Server
) -> None:
    context = browser.new_context()
    context.add_init_script(OPEN_SHADOW_ROOTS)
    page = context.new_page()
    problems = watch(page, site_server)
    open_page(page, site_server.url + "lazy-loading/")
    page.click("a[href$='thread-safe-lazy-init/']")
    page.wait_for_selector("h1#thread-safe-lazy-init")
    page.evaluate(SCROLL_TO_FIRST_DIAGRAM)
    page.wait_for_function(
        "() => [...document.querySelectorAll('div.mermaid')]"
        ".some(d => d.shadowRoot && d.shadowRoot.querySelector('svg'))",
        timeout=15_000,
    )
    assert not problems, "\n".join(problems)
    context.close()


CODE_PAGE = "message-queues/competing-consumers/"


def clipboard_context(browser: Any, server: Server) -> Any:
    context = browser.new_context()
    context.grant_permissions(
        ["clipboard-read", "clipboard-write"], origin=f"http://{server.host}"
    )
    return context


def test_code_copy_button_puts_the_code_on_the_clipboard(
    browser: Any, site_server: Server
) -> None:
    context = clipboard_context(browser, site_server)
    page = context.new_page()
    problems = watch(page, site_server)
    open_page(page, site_server.url + CODE_PAGE)
    # The last included snippet, far below the first screen. The theme mounts a
    # block's buttons when the block first comes into view (content.lazy).
    block = page.locator("div.language-python.highlight:has(.filename) pre").last
    button = block.locator("button.md-code__button[data-md-type='copy']")
    assert button.count() == 0, "the copy button was mounted before it was seen"
    block.scroll_into_view_if_needed()
    block.hover()
    button.click()
    copied = page.evaluate("navigator.clipboard.readText()")
    shown = block.locator("code").evaluate("code => code.textContent")
    context.close()
    # The clipboard text is the code as shown; whitespace at line ends may differ.
    assert copied.split() == shown.split() and copied.count("\n") >= 3, copied
    assert "def " in copied or "import " in copied, copied[:200]
    assert not problems, "\n".join(problems)


def test_copy_a_link_menu_copies_the_section_address(
    browser: Any, site_server: Server, site_url: str
) -> None:
    context = clipboard_context(browser, site_server)
    page = context.new_page()
    open_page(page, site_server.url + CODE_PAGE)
    heading = page.locator("h2#see-it-break")
    heading.scroll_into_view_if_needed()
    heading.hover()
    heading.locator(".cp-copy__toggle").click()
    heading.locator("[data-copy='url']").click()
    page.wait_for_function(
        "() => document.querySelector('h2#see-it-break .cp-copy__status')"
        ".textContent === 'Copied'"
    )
    url = page.evaluate("navigator.clipboard.readText()")
    heading.locator("[data-copy='markdown']").click()
    page.wait_for_function(
        "url => navigator.clipboard.readText().then(text => text !== url)", arg=url
    )
    markdown = page.evaluate("navigator.clipboard.readText()")
    context.close()

    assert url == f"{site_url}{CODE_PAGE}#see-it-break"
    assert markdown.startswith("[Competing Consumers — See it break](")
    assert markdown.endswith(f"({url})")


SCHEME = "() => document.body.getAttribute('data-md-color-scheme')"
# The page's color-scheme tags (partials/start-up.html keeps one, in step with
# the palette) and whether transitions are still turned off.
COLOR_SCHEME_TAGS = (
    "() => [...document.querySelectorAll('meta[name=color-scheme]')]"
    ".map(tag => tag.content).join(' ')"
)
SWITCHING = "() => document.body.hasAttribute('data-md-color-switching')"


def wait_for_tags(page: Any, expected: str) -> None:
    page.wait_for_function(
        f"expected => ({COLOR_SCHEME_TAGS})() === expected", arg=expected
    )


def test_light_dark_toggle_works_and_is_remembered(
    browser: Any, site_server: Server
) -> None:
    context = browser.new_context(color_scheme="light")
    page = context.new_page()
    problems = watch(page, site_server)
    open_page(page, site_server.url)
    assert page.evaluate(SCHEME) == "default"
    assert page.evaluate(COLOR_SCHEME_TAGS) == "light"
    assert not page.evaluate(SWITCHING), "transitions left off after start-up"
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")

    page.locator("form[data-md-component='palette'] label:visible").click()
    page.wait_for_function(f"() => ({SCHEME})() === 'slate'")
    wait_for_tags(page, "dark")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != (
        background
    ), "the dark palette did not change the page"
    page.wait_for_function(f"() => !({SWITCHING})()")

    reload_page(page)
    assert page.evaluate(SCHEME) == "slate", "not remembered across a reload"
    assert page.evaluate(COLOR_SCHEME_TAGS) == "dark"

    page.click("a.md-tabs__link[href$='message-queues/']")  # instant navigation
    page.wait_for_selector("h1#message-queues")
    assert page.evaluate(SCHEME) == "slate", "not remembered on navigation"
    assert page.evaluate(COLOR_SCHEME_TAGS) == "dark"

    open_page(page, site_server.url + "about/")
    assert page.evaluate(SCHEME) == "slate", "not remembered on a new page load"

    page.locator("form[data-md-component='palette'] label:visible").click()
    page.wait_for_function(f"() => ({SCHEME})() === 'default'")
    wait_for_tags(page, "light")
    reload_page(page)
    assert page.evaluate(SCHEME) == "default"
    assert page.evaluate(COLOR_SCHEME_TAGS) == "light"
    context.close()
    assert not problems, "\n".join(problems)


def test_first_visit_follows_a_dark_system_preference(
    browser: Any, site_server: Server
) -> None:
    # Nothing stored yet: the theme picks the palette whose media query
    # matches, a change from the page's default palette at start-up.
    context = browser.new_context(color_scheme="dark")
    page = context.new_page()
    problems = watch(page, site_server)
    open_page(page, site_server.url + CODE_PAGE)
    page.wait_for_function(f"() => ({SCHEME})() === 'slate'")
    wait_for_tags(page, "dark")
    page.wait_for_function(f"() => !({SWITCHING})()")
    assert (
        page.evaluate(
            "getComputedStyle(document.querySelector('.md-header')).colorScheme"
        )
        == "dark"
    )
    context.close()
    assert not problems, "\n".join(problems)
