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
from tests.site.test_browser import SCROLL_TO_FIRST_DIAGRAM, TWO_FRAMES, open_page
from tools.browser import ALL_DIAGRAMS_RENDERED, OPEN_SHADOW_ROOTS

__all__ = ["DIAGRAM_TEXT", "diagram_pages", "too_small"]

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

# A rendered label may be this much smaller than the body text (rounding).
TOLERANCE_PX = 0.5

VIEWPORTS: dict[str, dict[str, Any]] = {
    "desktop": {"viewport": {"width": 1280, "height": 900}},
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 3,
        "is_mobile": True,
        "has_touch": True,
    },
}

# Each label of each diagram on the page: its text and its size on screen in
# CSS pixels (its font size times the scale the diagram is drawn at), with the
# size of the page's body text.
DIAGRAM_TEXT = """() => {
  const body = parseFloat(getComputedStyle(
    document.querySelector(".md-content .md-typeset p") ??
    document.querySelector(".md-typeset")).fontSize);
  const labels = [];
  document.querySelectorAll("div.mermaid").forEach((host, diagram) => {
    const svg = host.shadowRoot?.querySelector("svg");
    if (!svg) return;
    const box = svg.viewBox.baseVal;
    const scale = box && box.width ? svg.getBoundingClientRect().width / box.width : 1;
    const leaves = [...svg.querySelectorAll("text, tspan, foreignObject *")]
      .filter(element => [...element.childNodes].some(
        node => node.nodeType === Node.TEXT_NODE && node.data.trim()));
    for (const element of leaves) {
      const size = parseFloat(getComputedStyle(element).fontSize) * scale;
      labels.push({diagram: diagram + 1, text: element.textContent.trim(), size});
    }
  });
  return {body, labels};
}"""


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


@pytest.mark.parametrize("device", sorted(VIEWPORTS))
def test_diagram_text_is_at_least_body_size(
    browser: Any, site_server: Server, device: str
) -> None:
    pages = diagram_pages(site_server)
    assert pages, "no page of the site has a diagram"
    context = browser.new_context(**VIEWPORTS[device])
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
        small += too_small(measured, f"{device} {url.removeprefix(site_server.url)}")
    context.close()
    assert labels, "no diagram label was measured"
    assert not small, f"{len(small)} labels smaller than the body text:\n" + "\n".join(
        small[:40]
    )


def test_the_check_fails_on_a_shrunken_diagram(
    browser: Any, site_server: Server
) -> None:
    """The measurement sees a diagram drawn at half its size."""
    context = browser.new_context(**VIEWPORTS["desktop"])
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
