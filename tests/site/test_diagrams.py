"""Every diagram's text, as rendered, is at least as large as the page's body text.

A diagram that the theme shrinks to the width of the text column shrinks its
labels with it: a wide flowchart's labels came out at half the body size. The
diagrams are drawn at their own size instead and scroll sideways where they are
wider than the column (overrides/partials/on-demand.html). Checked on a
desktop and on a phone's viewport, on every page that has a diagram.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.site.conftest import Server
from tests.site.page_visits import (
    DESKTOP,
    DIAGRAM_TEXT,
    SCROLL_TO_FIRST_DIAGRAM,
    SECTIONS,
    TWO_FRAMES,
    open_page,
    visit,
)
from tools.browser import ALL_DIAGRAMS_RENDERED, OPEN_SHADOW_ROOTS

__all__ = ["diagram_pages", "too_small"]

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

# A rendered label may be this much smaller than the body text (rounding).
TOLERANCE_PX = 0.5

PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 3,
    "is_mobile": True,
    "has_touch": True,
}


def diagram_pages(server: Server) -> list[str]:
    """The address of every page of the built site that has a diagram."""
    return [
        server.url + str(page.parent.relative_to(server.root)) + "/"
        for page in sorted(server.root.rglob("index.html"))
        if 'class="mermaid"' in page.read_text()
    ]


def too_small(measured: dict[str, Any], where: str) -> list[str]:
    """The labels of a page's diagrams that are smaller than its body text."""
    body = float(measured["body"])
    return [
        f"{where} diagram {label['diagram']}: {label['text']!r} at "
        f"{label['size']:.1f} px, body text {body:.1f} px"
        for label in measured["labels"]
        if label["size"] < body - TOLERANCE_PX
    ]


def report(small: list[str], labels: int) -> None:
    assert labels, "no diagram label was measured"
    assert not small, f"{len(small)} labels smaller than the body text:\n" + "\n".join(
        small[:40]
    )


# On a desktop, measured where tests/site/page_visits.py drew every diagram of
# one part of the site. A part without diagrams (the home pages, today) checks
# that none of its pages has one.
@pytest.mark.parametrize("section", SECTIONS)
def test_diagram_text_is_at_least_body_size_on_a_desktop(
    browser: Any, site_server: Server, section: str
) -> None:
    visits = visit(browser, site_server, section)
    measured = {v.url: v.diagram_text for v in visits if v.diagram_text is not None}
    with_diagrams = set(diagram_pages(site_server)) & {v.url for v in visits}
    assert set(measured) == with_diagrams, "pages with a diagram left unmeasured"
    small = [
        label
        for url, text in measured.items()
        for label in too_small(text, f"desktop {url.removeprefix(site_server.url)}")
    ]
    if measured:
        report(small, sum(len(text["labels"]) for text in measured.values()))


def test_diagram_text_is_at_least_body_size_on_a_phone(
    browser: Any, site_server: Server
) -> None:
    pages = diagram_pages(site_server)
    assert pages, "no page of the site has a diagram"
    context = browser.new_context(**PHONE)
    context.add_init_script(OPEN_SHADOW_ROOTS)
    page = context.new_page()
    small: list[str] = []
    labels = 0
    for url in pages:
        open_page(page, url)
        page.evaluate(TWO_FRAMES)
        page.evaluate(SCROLL_TO_FIRST_DIAGRAM)
        page.wait_for_function(ALL_DIAGRAMS_RENDERED, timeout=15_000)
        measured = page.evaluate(DIAGRAM_TEXT)
        labels += len(measured["labels"])
        small += too_small(measured, f"phone {url.removeprefix(site_server.url)}")
    context.close()
    report(small, labels)


def test_the_check_fails_on_a_shrunken_diagram(
    browser: Any, site_server: Server
) -> None:
    """The measurement sees a diagram drawn at half its size."""
    context = browser.new_context(**DESKTOP)
    context.add_init_script(OPEN_SHADOW_ROOTS)
    page = context.new_page()
    open_page(page, diagram_pages(site_server)[0])
    page.evaluate(SCROLL_TO_FIRST_DIAGRAM)
    page.wait_for_function(ALL_DIAGRAMS_RENDERED, timeout=15_000)
    assert not too_small(page.evaluate(DIAGRAM_TEXT), "as built")
    page.evaluate(
        """() => document.querySelectorAll("div.mermaid").forEach(host => {
          const svg = host.shadowRoot.querySelector("svg");
          svg.style.maxWidth = "none";
          svg.style.width = svg.viewBox.baseVal.width / 2 + "px";
        })"""
    )
    assert too_small(page.evaluate(DIAGRAM_TEXT), "shrunk")
    context.close()
