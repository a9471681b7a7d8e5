"""Step 1 of ``make pdf``: one page of the whole guide (tools/pdf/build_pdf.py).

A strict build (tools/build.py) with the print-site plugin switched on (mode
``pdf``, see mkdocs.yml). The plugin adds ``print_page/``: every page of the
navigation in order, with internal links rewritten to anchors on that page
and a table of contents that its script fills in.
"""

from __future__ import annotations

import re
from pathlib import Path

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
