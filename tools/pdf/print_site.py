"""Step 1 of ``make pdf``: one page of the whole guide (tools/pdf/build_pdf.py).

A strict build (tools/build.py) with the print-site plugin switched on (mode
``pdf``, see mkdocs.yml). The plugin adds ``print_page/``: every page of the
navigation in order, with internal links rewritten to anchors on that page
and a table of contents that its script fills in.

It is also a hook of every build (mkdocs.yml): :func:`update_anchor_ids`
stands in for the plugin's function of that name, which did the same work
much more slowly.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tools.pdf.book import BookError


def build_print_site(site_dir: Path) -> Path:
    """Build the site with the print page; return the print page's file."""
    from tools.build import build_site

    result = build_site(site_dir, mode="pdf")
    if result.returncode != 0:
        raise BookError(f"mkdocs build failed:\n{result.stdout}{result.stderr}")
    return site_dir / "print_page" / "index.html"


def page_addresses(site_dir: Path) -> dict[str, str]:
    """The print page's id of each page → the page's canonical web address."""
    canonical = re.compile(r'<link rel="canonical" href="([^"]+)"')
    addresses = {}
    for index in sorted(site_dir.rglob("index.html")):
        url = index.parent.relative_to(site_dir).as_posix()
        if url == "print_page":
            continue
        found = canonical.search(index.read_text()[:4000])
        if found:
            # The print-site plugin's page key: "a/b/" → "a-b", "" → "index".
            key = url.strip("./").replace("/", "-").lower() or "index"
            addresses[key] = found[1]
    return addresses


# --------------------------------------------------------------------------- #
# A hook (mkdocs.yml): the plugin's anchor renaming, in one pass
# --------------------------------------------------------------------------- #

# The print-site plugin's own pattern and tags (mkdocs_print_site_plugin/urls.py).
ANCHOR_TAG = re.compile(r"<([^\s]+).*?id=\"([^\"]*?)\".*?>", flags=re.IGNORECASE)
RENAMED_TAGS = ["h1", "h2", "h3", "h4", "h5", "h6", "sup", "li"]
ID = re.compile(r'id="', flags=re.IGNORECASE)
ID_ACROSS_LINES = re.compile(r'id="[^"]*\n', flags=re.IGNORECASE)


def update_anchor_ids(page_html: str, page_key: str) -> str:
    """The plugin's ``update_anchor_ids``, with the same result, faster.

    Each heading, footnote and list item's id gets the page's key in front
    (``id="pagekey-anchor"``), so that ids stay unique on the print page. The
    plugin's pattern is tried at every ``<`` of the page and reads on to the
    end of its line looking for ``id="``: 2.9 s of the book's 8 s site build.
    A match cannot cross a line (only an id's value could, checked first), so
    this runs the same pattern on the lines that hold ``id="`` and nowhere
    else, and makes the same replacements in the same order.
    """
    if ID_ACROSS_LINES.search(page_html):
        lines = [page_html]
    else:
        lines = [line for line in page_html.split("\n") if ID.search(line)]
    for line in lines:
        for found in ANCHOR_TAG.finditer(line):
            if found[1] not in RENAMED_TAGS:
                continue
            tag, anchor = found[0], found[2]
            page_html = page_html.replace(
                tag, tag.replace(anchor, f"{page_key}-{anchor}")
            )
    return page_html


def on_config(config: Any) -> Any:
    from mkdocs_print_site_plugin import urls

    urls.update_anchor_ids = update_anchor_ids
    return config
