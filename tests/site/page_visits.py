"""One visit of every page in Chromium, read by the checks of every page.

Three checks look at every page of the built site: it loads cleanly and only
from the site (test_browser.py), it has no serious accessibility violation in
either palette (test_accessibility.py), and its diagrams' text is at least as
large as its body text on a desktop (test_diagrams.py). Loading a page costs
more than any of the three looks at it, so :func:`visit` loads each page of
one part of the site once in the light palette, on one tab that goes from page
to page, and takes every measurement there; then once more in the dark
palette, for the colour rules. The checks assert on what it recorded.

A part's visit is kept for the rest of the test process, and tests/conftest.py
hands the checks of a part to one worker together (``xdist_scope``): each page
is loaded twice per run, once per palette.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.site.conftest import Server
from tools.browser import ALL_DIAGRAMS_RENDERED, OPEN_SHADOW_ROOTS
from tools.links import is_redirect_page
from tools.page_checks import DOCS

__all__ = [
    "DESKTOP",
    "DIAGRAM_TEXT",
    "PALETTES",
    "SCHEME",
    "SCROLL_TO_FIRST_DIAGRAM",
    "SECTIONS",
    "TWO_FRAMES",
    "PageVisit",
    "open_page",
    "page_urls",
    "section_urls",
    "violations",
    "visit",
    "watch",
]

# --------------------------------------------------------------------------- #
# The pages, in parts
# --------------------------------------------------------------------------- #


def page_urls(server: Server) -> list[str]:
    """Every page of the site; forwarding pages of moved pages are checked in
    tests/site/test_links.py (they leave at once, so their load is aborted)."""
    pages = sorted(
        p for p in server.root.rglob("index.html") if not is_redirect_page(p)
    )
    return [server.url + str(p.parent.relative_to(server.root)) + "/" for p in pages]


# The checks of every page take one part of the site per test, so that the test
# processes share the work: a topic's folder, or "home" for the pages outside
# every folder.
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


# --------------------------------------------------------------------------- #
# What a page does in the browser
# --------------------------------------------------------------------------- #

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

# A desktop browser's window (Playwright's default size). The diagrams' text
# size depends on the width; the height sets where "near" ends, and a page whose
# first diagram sits at that edge may see its library load, then the diagram
# move a few pixels down as the page settles: at 900 pixels high,
# delayed-retries' first diagram ends up 16 pixels past two screens.
DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 720}}

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

# --------------------------------------------------------------------------- #
# Accessibility: axe-core, vendored under tests/site/vendor/axe-core
# --------------------------------------------------------------------------- #

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
BLOCKING = ("critical", "serious")
# The palette a reader's system preference picks: its ``data-md-color-scheme``.
PALETTES = {"light": "default", "dark": "slate"}
SCHEME = "() => document.body.getAttribute('data-md-color-scheme')"
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


# --------------------------------------------------------------------------- #
# The visit
# --------------------------------------------------------------------------- #


@dataclass
class PageVisit:
    """What one page did and showed."""

    url: str
    problems: list[str] = field(default_factory=list)
    diagrams: int = 0  # diagrams rendered as SVG
    diagram_text: dict[str, Any] | None = None  # DIAGRAM_TEXT, on a page with any
    schemes: dict[str, str] = field(default_factory=dict)  # palette -> scheme shown
    violations: dict[str, list[str]] = field(default_factory=dict)  # by palette
    loaded_cleanly: bool = True  # False: not part of the browser check (a 404)


VISITS: dict[str, list[PageVisit]] = {}


def visit(browser: Any, server: Server, section: str) -> list[PageVisit]:
    """Every page of ``section``, visited once per palette (kept per process)."""
    if section not in VISITS:
        VISITS[section] = _visit(browser, server, section)
    return VISITS[section]


def _visit(browser: Any, server: Server, section: str) -> list[PageVisit]:
    visits = [PageVisit(url) for url in section_urls(server, section)]
    if section == "home":  # the "not found" page: accessibility only
        visits.append(PageVisit(server.url + "no-such-page/", loaded_cleanly=False))

    light = browser.new_context(color_scheme="light", **DESKTOP)
    light.add_init_script(OPEN_SHADOW_ROOTS)
    page = light.new_page()
    seen = watch(page, server)
    library: list[str] = []
    page.on(
        "request", lambda r: library.append(r.url) if DIAGRAM_LIBRARY in r.url else None
    )
    for record in visits:
        # Leave the last page first, so that what its leaving cancels (a fetch
        # still under way) is not put down to the next one.
        page.goto("about:blank")
        seen.clear()
        library.clear()
        if record.loaded_cleanly:
            open_page(page, record.url)
            _check_loading(page, record, library)
            record.problems[:0] = seen
        else:
            page.goto(record.url, wait_until="load")
        record.schemes["light"] = page.evaluate(SCHEME)
        record.violations["light"] = violations(page)
    light.close()

    dark = browser.new_context(color_scheme="dark", **DESKTOP)
    page = dark.new_page()
    for record in visits:
        page.goto(record.url, wait_until="load")
        record.schemes["dark"] = page.evaluate(SCHEME)
        record.violations["dark"] = violations(page, COLOUR_RULES)
    dark.close()
    return visits


def _check_loading(page: Any, record: PageVisit, library: list[str]) -> None:
    """The diagram loader's behaviour, every diagram drawn, their text measured."""
    page.evaluate(TWO_FRAMES)  # the diagram loader has seen the layout
    has_diagram = page.locator(".mermaid").count() > 0
    near = page.evaluate(FIRST_DIAGRAM_IS_NEAR)
    if library and not near:
        record.problems.append("the diagram library loaded before any diagram was near")
    page.evaluate(SCROLL_TO_FIRST_DIAGRAM)
    try:
        page.wait_for_function(ALL_DIAGRAMS_RENDERED, timeout=15_000)
    except Exception:
        record.problems.append("a diagram did not render as SVG")
    record.diagrams = page.locator(".mermaid").count()
    if library and not has_diagram:
        record.problems.append(
            f"no diagram, but the diagram library loaded: {library[0]}"
        )
    if has_diagram:
        record.diagram_text = page.evaluate(DIAGRAM_TEXT)
