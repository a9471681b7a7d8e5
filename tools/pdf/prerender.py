"""Step 2 of ``make pdf``: pre-render the print page in Chromium.

Playwright opens the print page from ``file://`` in Debian's Chromium
(tools/browser.py) and runs its scripts once; then the scripts of
tools/pdf/scripts.py draw every mermaid diagram to SVG (text labels, no HTML
inside the SVG, which WeasyPrint cannot lay out), add the cover and each
page's web address, keep each content tab's label with its block, turn
admonition icons into inline SVG, replace each page's API reference with a
link to it on the web, mark each chapter's last lines to stay together, make
runs of code tokens drawn alike one run of text (each token is a box to lay
out and draw; on paper operators and punctuation take the names' colour, so
most runs are a line long), and split the book into parts. The result is
saved without scripts. Material's own script is not run: it would draw the
diagrams into a closed shadow root and add buttons that mean nothing on
paper. Drawing the diagrams is most of this step's time: each drawn diagram
is kept under .cache/build (tools/build_cache.py), keyed by its source, the
diagram library, the script and the browser, and the next build uses it.

Chromium may read files and nothing else.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from pathlib import Path

from tools import build_cache
from tools.pdf.book import Book, BookError, cover_html, head_metadata
from tools.pdf.join import PART_LINK
from tools.pdf.scripts import PRERENDER, SPLIT, TAKE_DIAGRAMS

# The vendored diagram library, in the built site.
MERMAID = "assets/vendor/mermaid/mermaid.min.js"
# On paper, operators and punctuation print in the colour of the names
# around them. The code-token merge below then makes most of a line one run of
# text: about 28,000 of the book's 46,000 token spans were punctuation and
# operators, each a box that WeasyPrint breaks into lines and draws on its own.
# Saved with the page, so WeasyPrint reads it too.
CODE_COLOURS = """
.md-typeset .highlight {
  --md-code-hl-operator-color: var(--md-code-hl-name-color);
  --md-code-hl-punctuation-color: var(--md-code-hl-name-color);
}
"""
# Scripts of the site that the book does without (see above).
SKIPPED_SCRIPTS = re.compile(r"/javascripts/(bundle\.[0-9a-f]+\.min|copy-link)\.js$")


@dataclass(frozen=True)
class Prerendered:
    """The pre-rendered book: whole, and in parts to lay out side by side."""

    document: str
    parts: list[str]  # the cover and the contents first, then the chapters


def prerender(
    print_page: Path, book: Book, addresses: dict[str, str], jobs: int = 1
) -> Prerendered:
    """Run the print page in Chromium; return its HTML, ready for WeasyPrint.

    ``jobs``: how many parts the chapters are split into.
    """
    from playwright.sync_api import Route

    from tools import browser

    try:
        browser.require()
    except browser.NoChromium as error:
        raise BookError(str(error)) from None

    refused: list[str] = []

    def only_files(route: Route) -> None:
        url = route.request.url
        if not url.startswith("file://"):
            refused.append(url)
            route.abort()
        elif SKIPPED_SCRIPTS.search(url):
            route.fulfill(body="", content_type="text/javascript")
        else:
            route.continue_()

    with browser.chromium() as chromium:
        page = chromium.new_page()
        page.route("**/*", only_files)
        page.add_init_script(TAKE_DIAGRAMS)
        page.goto(print_page.as_uri(), wait_until="load")
        if not page.evaluate("typeof mermaid !== 'undefined'"):
            # However the site loads the diagram library, the book needs it now.
            library = print_page.parent.parent / MERMAID
            if not library.exists():
                raise BookError(f"the diagram library is not at {library}")
            page.add_script_tag(path=library)
        page.add_style_tag(content=CODE_COLOURS)
        sources = page.evaluate(
            "[...document.querySelectorAll('.cp-diagram')].map(f => f.dataset.source)"
        )
        salt = diagram_salt(print_page, chromium.version)
        result = page.evaluate(
            PRERENDER,
            {
                "cover": cover_html(book),
                "addresses": addresses,
                "siteUrl": book.site_url,
                "drawn": drawn_diagrams(salt, sources),
                "drawnId": DRAWN_ID,
            },
        )
        problems = result["problems"]
        keep_diagrams(salt, result["rendered"])
        document = page.content()
        sizes = page.evaluate(
            "() => [...document.getElementById('print-site-page').children]"
            ".map(section => section.innerHTML.length)"
        )
        groups = [[0], *parts_of(sizes[1:], jobs, first=1)]
        parts = page.evaluate(SPLIT, {"groups": groups, "link": PART_LINK})
    if refused:
        raise BookError("the print page asked for other hosts: " + ", ".join(refused))
    if problems:
        raise BookError("\n".join(problems))
    return Prerendered(finish(document, book), [finish(part, book) for part in parts])


# In a stored diagram, its own id (cp-diagram-<n>) reads this; mermaid starts
# each id inside the SVG with it.
DRAWN_ID = "cp-diagram-drawn"


def diagram_salt(print_page: Path, chromium: str) -> list[str]:
    """What a drawn diagram depends on besides its source: the diagram
    library, the script that sets it up, and the browser that measures text."""
    library = print_page.parent.parent / MERMAID
    digest = (
        hashlib.sha256(library.read_bytes()).hexdigest() if library.exists() else ""
    )
    return [digest, hashlib.sha256(PRERENDER.encode()).hexdigest(), chromium]


def drawn_diagrams(salt: list[str], sources: list[str]) -> dict[str, str]:
    """The diagrams of ``sources`` that an earlier build drew, by source.

    Kept under .cache/build/diagram by tools/build_cache.py, like the site's
    highlighted code: drawing them is most of the pre-render's time.
    """
    drawn: dict[str, str] = {}
    if not build_cache.enabled():
        return drawn
    for source in sources:
        svg = build_cache.load("diagram", diagram_key(salt, source))
        if isinstance(svg, str):
            drawn[source] = svg
    return drawn


def keep_diagrams(salt: list[str], rendered: dict[str, str]) -> None:
    """Store the diagrams this build drew, by source, for the next build."""
    if not build_cache.enabled():
        return
    for source, svg in rendered.items():
        build_cache.store("diagram", diagram_key(salt, source), svg)


def diagram_key(salt: list[str], source: str) -> str:
    return build_cache.key("diagram", salt, source)


def finish(document: str, book: Book) -> str:
    """The book's title, metadata and language in a document's head."""
    document = re.sub(r"<title>.*?</title>", "", document, count=1, flags=re.S)
    document = document.replace("<head>", "<head>" + head_metadata(book), 1)
    return re.sub(r"<html\b[^>]*>", f'<html lang="{book.language}">', document, count=1)


def parts_of(sizes: list[int], jobs: int, first: int = 0) -> list[list[int]]:
    """Split sections in order into at most ``jobs`` runs of about equal size.

    Returns each run's section indexes, counted from ``first``; the largest
    run is as small as it can be.
    """
    count = len(sizes)
    jobs = max(1, min(jobs, count))
    prefix = [0]
    for size in sizes:
        prefix.append(prefix[-1] + size)
    # best[k][i]: the largest run when the first i sections make k runs.
    best = [[float("inf")] * (count + 1) for _ in range(jobs + 1)]
    cut = [[0] * (count + 1) for _ in range(jobs + 1)]
    best[0][0] = 0
    for k in range(1, jobs + 1):
        for i in range(1, count + 1):
            for j in range(k - 1, i):
                largest = max(best[k - 1][j], prefix[i] - prefix[j])
                if largest < best[k][i]:
                    best[k][i], cut[k][i] = largest, j
    runs, end = [], count
    for k in range(jobs, 0, -1):
        start = cut[k][end]
        runs.append(list(range(first + start, first + end)))
        end = start
    return [run for run in reversed(runs) if run]


def broken_links(document: str) -> list[str]:
    """Internal links of the book that point at no element of it."""
    ids = set(re.findall(r'\sid="([^"]+)"', document))
    targets = re.findall(r'<a\b[^>]*\shref="#([^"]*)"', document)
    return sorted({html.unescape(t) for t in targets} - {html.unescape(i) for i in ids})


# --------------------------------------------------------------------------- #
# Step 3: lay out with WeasyPrint
