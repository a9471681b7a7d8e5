"""The whole guide as one PDF: ``make pdf`` (``python -m tools.pdf.build_pdf``).

Three steps, one module each:

1. **One page of the whole guide** (tools/pdf/print_site.py): a strict site
   build with the print-site plugin, which puts every page of the navigation
   on one page, ``print_page/``.
2. **Pre-render in Chromium** (tools/pdf/prerender.py, with the scripts of
   tools/pdf/scripts.py): the print page's scripts run once, the diagrams are
   drawn to SVG, the page becomes a book (cover, addresses, links, code runs)
   and is split into parts. The theme's stylesheets are cut down to the rules
   that can apply to the book (tools/pdf/styles.py).
3. **Lay out with WeasyPrint, in parallel** (tools/pdf/layout.py, with the
   changes to WeasyPrint of tools/pdf/weasy.py and the stylesheet
   tools/pdf/print.css): each part in a process of its own; the contents last,
   with their page numbers; pypdf joins the parts (tools/pdf/join.py).

Nothing is fetched from the network: Chromium may read files and nothing
else, and WeasyPrint gets a URL fetcher that refuses anything but files.
The build fails when a link in the book points at no place in it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from tools.pdf.book import ROOT, Book, BookError
from tools.pdf.layout import jobs, write_pdf
from tools.pdf.prerender import broken_links, prerender
from tools.pdf.print_site import build_print_site, page_addresses
from tools.pdf.styles import prune

__all__ = ["PDF", "PRINT_SITE", "Book", "BookError", "build", "main"]

BUILD = ROOT / "build"
PRINT_SITE = BUILD / "pdf-site"
PDF = BUILD / "concurrency-patterns.pdf"


def build(
    target: Path = PDF,
    site_dir: Path = PRINT_SITE,
    report: Callable[[str], None] | None = None,
) -> Path:
    """Build the PDF at ``target``; return its path.

    ``report`` gets a line for each step done: its name and wall-clock time.
    """
    clock = [time.perf_counter()]

    def done(step: str) -> None:
        now = time.perf_counter()
        if report is not None:
            report(f"{step}: {now - clock[0]:.1f} s")
        clock[0] = now

    book = Book.from_project()
    print_page = build_print_site(site_dir)
    done("site build (pdf mode)")
    book_html = prerender(print_page, book, page_addresses(site_dir), jobs())
    prerendered = print_page.with_name("book.html")
    prerendered.write_text(book_html.document)
    broken = broken_links(book_html.document)
    if broken:
        raise BookError(
            f"links to no place in the book ({prerendered}): " + ", ".join(broken)
        )
    parts = prune(book_html.document, prerendered, book_html.parts)
    done("pre-render in Chromium")
    write_pdf(parts, prerendered, target)
    done("layout and join")
    return target


def main() -> int:
    started = time.perf_counter()
    try:
        target = build(report=lambda line: print(line, file=sys.stderr))
    except BookError as error:
        print(f"make pdf: {error}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - started
    size = target.stat().st_size / 1e6
    print(f"{target.relative_to(ROOT)}: {size:.1f} MB in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
