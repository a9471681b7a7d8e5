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

import pytest

from tests.site.conftest import Server
from tests.site.page_visits import (
    SCHEME,
    SCROLL_TO_FIRST_DIAGRAM,
    SECTIONS,
    THEME_MOUNTED,
    TWO_FRAMES,
    open_page,
    page_urls,
    section_urls,
    visit,
    watch,
)
from tools.browser import OPEN_SHADOW_ROOTS

pytestmark = pytest.mark.browser


def reload_page(page: Any) -> None:
    page.reload(wait_until="load")
    page.wait_for_function(THEME_MOUNTED, timeout=15_000)


def test_the_sections_cover_every_page(site_server: Server) -> None:
    covered = [url for name in SECTIONS for url in section_urls(site_server, name)]
    assert sorted(covered) == sorted(page_urls(site_server))
    assert all(section_urls(site_server, name) for name in SECTIONS)


# Every page of one part of the site (tests/site/page_visits.py visits them):
# no console error or warning, no failed request, no request to another host,
# no HTTP error; the diagram library loads only once a diagram is near, and
# only on a page that has one; every diagram is drawn as SVG.
@pytest.mark.timeout(600)
@pytest.mark.parametrize("section", SECTIONS)
def test_every_page_loads_cleanly_and_only_from_the_site(
    browser: Any, site_server: Server, section: str
) -> None:
    visits = [v for v in visit(browser, site_server, section) if v.loaded_cleanly]
    assert visits
    failures = {v.url: v.problems for v in visits if v.problems}
    assert not failures, "\n".join(
        f"{u}\n  " + "\n  ".join(p) for u, p in failures.items()
    )
    diagrams = sum(v.diagrams for v in visits)
    in_html = sum(
        (site_server.root / v.url.removeprefix(site_server.url) / "index.html")
        .read_text()
        .count('class="mermaid"')
        for v in visits
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
