"""axe-core on every page of the built site, in both palettes.

No page may have a critical or serious violation (WCAG 2.x A and AA rules and
axe's best practices): every rule in the light palette, the colour rules in the
dark one. The copy-a-link menu and the search dialog are checked
open as well as closed. axe-core is vendored under tests/site/vendor/axe-core
(see its VERSION file) and is never part of the site.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.site.conftest import Server
from tests.site.test_browser import SECTIONS, section_urls

pytestmark = pytest.mark.browser

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
BLOCKING = ("critical", "serious")
PALETTES = {"light": "default", "dark": "slate"}


# A palette changes colours and nothing else (Material swaps CSS custom
# properties), so the page's structure is checked once, in the light palette,
# and the dark palette is checked for the rules that depend on colour.
COLOUR_RULES = ["color-contrast", "link-in-text-block"]


def violations(page: Any, rules: list[str] | None = None) -> list[str]:
    """Critical and serious violations on the page as it is now.

    ``rules`` narrows the check to those axe rules; by default all run.
    """
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
        # Off-screen code blocks skip rendering (content-visibility: auto in
        # extra.css); render everything so that axe checks every colour. And
        # end the theme's colour transitions (code blocks fade their background
        # in 125 ms): on a busy machine axe could read a colour half-way.
        page.add_style_tag(
            content="* { content-visibility: visible !important;"
            " transition: none !important; }"
        )
    options: dict[str, Any] = {"resultTypes": ["violations"]}
    if rules is not None:
        options["runOnly"] = {"type": "rule", "values": rules}
    result = page.evaluate("options => axe.run(document, options)", options)
    found = []
    for rule in result["violations"]:
        if rule["impact"] in BLOCKING:
            for node in rule["nodes"][:3]:
                found.append(
                    f"{rule['impact']} {rule['id']}: {node['target']} "
                    f"{node['failureSummary'].splitlines()[-1].strip()}"
                )
    return found


@pytest.mark.timeout(600)
@pytest.mark.parametrize("section", SECTIONS)
@pytest.mark.parametrize("palette", sorted(PALETTES))
def test_every_page_has_no_serious_violation(
    browser: Any, site_server: Server, palette: str, section: str
) -> None:
    context = browser.new_context(color_scheme=palette)
    page = context.new_page()
    failures: dict[str, list[str]] = {}
    urls = section_urls(site_server, section)
    if section == "home":
        urls.append(site_server.url + "no-such-page/")
    rules = None if palette == "light" else COLOUR_RULES
    for url in urls:
        page.goto(url, wait_until="load")
        scheme = page.evaluate("document.body.getAttribute('data-md-color-scheme')")
        assert scheme == PALETTES[palette], f"{url} opened in {scheme}"
        found = violations(page, rules)
        if found:
            failures[url] = found
    context.close()
    assert not failures, "\n".join(
        f"{u} ({palette})\n  " + "\n  ".join(f) for u, f in failures.items()
    )


@pytest.mark.parametrize("palette", sorted(PALETTES))
def test_open_menus_and_search_have_no_serious_violation(
    browser: Any, site_server: Server, palette: str
) -> None:
    context = browser.new_context(color_scheme=palette)
    page = context.new_page()
    page.goto(
        site_server.url + "message-queues/competing-consumers/", wait_until="load"
    )
    heading = page.locator("h2#see-it-break")
    heading.hover()
    heading.locator(".cp-copy__toggle").click()
    found = [f"copy-a-link menu: {v}" for v in violations(page)]
    page.keyboard.press("Escape")

    page.keyboard.press("/")
    page.keyboard.type("lost message")
    page.locator(".md-search-result__item").first.wait_for()
    found += [f"search dialog: {v}" for v in violations(page)]
    context.close()
    assert not found, "\n".join(found)
