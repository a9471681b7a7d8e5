"""Step 3 of ``make pdf``: lay the parts out with WeasyPrint, side by side.

WeasyPrint turns each pre-rendered part (tools/pdf/prerender.py) into a PDF
with ``print.css`` beside this file: page size, running headers, page
numbers, the PDF outline (``bookmark-level``). WeasyPrint, unlike Chromium,
implements those parts of CSS Paged Media. Each part of the chapters is laid
out in a process of its own; a part numbers its pages from the count of the
pages before it, handed to it once the parts before it have counted theirs
(tools/pdf/weasy.py). The cover and contents are laid out last, with each
entry's page number written in; tools/pdf/join.py joins the parts' PDFs.

WeasyPrint gets a URL fetcher that refuses anything but files.
"""

from __future__ import annotations

import html
import multiprocessing
import os
import re
import tempfile
import traceback
import urllib.parse
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from tools.pdf.book import BookError
from tools.pdf.join import PART_LINK, join

STYLESHEET = Path(__file__).resolve().parent / "print.css"
# The contents' page numbers, once the parts' pages are counted.
CONTENTS_NUMBERS = """
#print-page-toc a[data-cp-page]::after {
  content: leader(". ") attr(data-cp-page) !important;
}
"""
# While the contents are counted: room for the widest page number.
PLACEHOLDER_PAGE = "888"
# A folder: each process that lays out a part writes its cProfile there.
PROFILE = "CP_PDF_PROFILE"


def jobs() -> int:
    """How many processes lay out the book: ``$CP_PDF_JOBS``, else the cores."""
    return max(1, int(os.environ.get("CP_PDF_JOBS") or os.cpu_count() or 1))


def _fetcher() -> Any:
    import weasyprint

    # Files and inline data only; anything else, or a missing file, stops it.
    return weasyprint.URLFetcher(
        allowed_protocols={"file", "data"}, fail_on_errors=True
    )


def render(document: str, base: str, extra_css: str = "") -> Any:
    """Lay out one document with the book's stylesheet; a WeasyPrint Document."""
    import weasyprint

    from tools.pdf import weasy

    weasy.fast_svg_text()
    fetcher = _fetcher()
    stylesheets = [weasyprint.CSS(filename=str(STYLESHEET), url_fetcher=fetcher)]
    if extra_css:
        stylesheets.append(weasyprint.CSS(string=extra_css))
    return weasyprint.HTML(string=document, base_url=base, url_fetcher=fetcher).render(
        stylesheets=stylesheets, optimize_images=True
    )


def save(rendering: Any, target: Path) -> None:
    rendering.write_pdf(target, pdf_identifier=False, uncompressed_pdf=False)


def lay_out_part(document: str, base: str, target: str, conn: Connection) -> None:
    """A worker process: lay out one part of the book and write its PDF.

    It tells the parent how many pages the part has, waits for the number of
    pages before it, and tells where each of its places landed.
    """
    profile = _profiler()
    try:
        from tools.pdf import weasy

        def offset(pages: int) -> int:
            conn.send(("pages", pages))
            return int(conn.recv())

        weasy.number_pages_from(offset)
        rendering = render(document, base)
        anchors: dict[str, int] = {}
        for index, page in enumerate(rendering.pages):
            for name in page.anchors:
                anchors.setdefault(name, index)
        conn.send(("anchors", anchors))
        save(rendering, Path(target))
        conn.send(("done", None))
    except BaseException:  # the parent reports it
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()
        if profile is not None:
            profile.disable()
            profile.dump_stats(Path(os.environ[PROFILE]) / f"part-{os.getpid()}.prof")


def _profiler() -> Any:
    """With ``$CP_PDF_PROFILE`` set to a folder, a cProfile of this process."""
    if not os.environ.get(PROFILE):
        return None
    import cProfile

    Path(os.environ[PROFILE]).mkdir(parents=True, exist_ok=True)
    profile = cProfile.Profile()
    profile.enable()
    return profile


def _expect(conn: Connection, what: str) -> Any:
    try:
        kind, value = conn.recv()
    except EOFError:
        raise BookError("a process laying out the book stopped") from None
    if kind == "error":
        raise BookError(f"laying out a part of the book failed:\n{value}")
    if kind != what:
        raise BookError(f"expected {what} from a part of the book, got {kind}")
    return value


def numbered_contents(contents: str, pages: dict[str, int]) -> str:
    """The contents part with each entry's page number written in."""
    link = re.compile(r'href="' + PART_LINK + r'([^"]*)"')

    def number(found: re.Match[str]) -> str:
        name = urllib.parse.unquote(html.unescape(found[1]))
        if name not in pages:
            raise BookError(f"the contents link to #{name}, which is on no page")
        return f'{found[0]} data-cp-page="{pages[name]}"'

    return link.sub(number, contents)


def write_pdf(parts: list[str], base: Path, target: Path) -> None:
    """Lay out the parts side by side and join them into the PDF at ``target``.

    ``parts[0]`` is the cover and the contents; the others, the chapters in
    order, each go to a process of their own. The contents are laid out last,
    when every entry's page number is known.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")
    contents, chapters = parts[0], parts[1:]
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        files = [Path(scratch) / f"part-{n}.pdf" for n in range(len(parts))]
        workers: list[tuple[BaseProcess, Connection]] = []
        try:
            for part, file in zip(chapters, files[1:], strict=True):
                mine, theirs = context.Pipe()
                process = context.Process(
                    target=lay_out_part,
                    args=(part, base.as_uri(), str(file), theirs),
                    daemon=True,
                )
                process.start()
                theirs.close()
                workers.append((process, mine))
            placeholder = re.sub(
                r'href="' + PART_LINK + r'[^"]*"',
                rf'\g<0> data-cp-page="{PLACEHOLDER_PAGE}"',
                contents,
            )
            first = len(render(placeholder, base.as_uri(), CONTENTS_NUMBERS).pages)
            offsets, before = [], first
            for _, conn in workers:
                offsets.append(before)
                before += _expect(conn, "pages")
            for (_, conn), offset in zip(workers, offsets, strict=True):
                conn.send(offset)
            pages: dict[str, int] = {}
            for (_, conn), offset in zip(workers, offsets, strict=True):
                for name, index in _expect(conn, "anchors").items():
                    pages.setdefault(name, offset + index + 1)
            numbered = numbered_contents(contents, pages)
            rendering = render(numbered, base.as_uri(), CONTENTS_NUMBERS)
            if len(rendering.pages) != first:
                raise BookError(
                    f"the contents took {len(rendering.pages)} pages with their page"
                    f" numbers and {first} without: the numbers would be wrong"
                )
            save(rendering, files[0])
            for _, conn in workers:
                _expect(conn, "done")
        finally:
            for worker, conn in workers:
                conn.close()
                worker.join(timeout=5)
                if worker.is_alive():
                    worker.kill()
        join(files, target)
