"""axe-core on every page of the built site, in both palettes.

No page may have a critical or serious violation (WCAG 2.x A and AA rules and
axe's best practices): every rule in the light palette, the colour rules in the
dark one. The copy-a-link menu and the search dialog are checked
open as well as closed. axe-core is vendored under tests/site/vendor/axe-core
(see its VERSION file) and is never part of the site.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.site.conftest import Server
from tests.site.page_visits import PALETTES, SECTIONS, violations, visit

pytestmark = pytest.mark.browser


# Every page of one part of the site, as tests/site/page_visits.py found it:
# every rule in the light palette, the colour rules in the dark one; each page
# opened in the palette of the reader's system preference.
@pytest.mark.timeout(600)
@pytest.mark.parametrize("section", SECTIONS)
@pytest.mark.parametrize("palette", sorted(PALETTES))
def test_every_page_has_no_serious_violation(
    browser: Any, site_server: Server, palette: str, section: str
) -> None:
    visits = visit(browser, site_server, section)
    for page in visits:
        shown = page.schemes[palette]
        assert shown == PALETTES[palette], f"{page.url} opened in {shown}"
    failures = {v.url: v.violations[palette] for v in visits if v.violations[palette]}
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
