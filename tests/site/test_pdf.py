"""The PDF of the whole guide (``make pdf``), opened and checked with pypdf.

The book is built once per session by tools/pdf/build_pdf.py, the code
behind ``make pdf``. The checks are what a reader relies on: every page of the
navigation is in the outline with its sections, every internal link lands on
a page, the contents give the right page numbers, nothing is printed past the
margin, no diagram is left as source, each pattern page shows its address.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from pypdf import PdfReader
from pypdf.generic import ArrayObject, Destination, DictionaryObject

from tests.conftest import ROOT, unavailable
from tools import browser
from tools.links import page_url
from tools.page_checks import DOCS, heading_ids, outside_fences, page_kind
from tools.pdf import anchors, build_pdf

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

MM = 72 / 25.4
# The text column: print.css gives every page 20 mm side margins.
SIDE_MARGIN = 20 * MM
# A page with less text than this (about three lines) is near-empty.
NEAR_EMPTY_CHARS = 250


@dataclass
class Entry:
    """One entry of the PDF outline."""

    title: str
    page: int  # 1-based
    top: float
    children: list[Entry] = field(default_factory=list)


@dataclass(frozen=True)
class Book:
    path: Path
    reader: PdfReader
    texts: list[str]  # the text of each page
    outline: list[Entry]
    site_url: str


def page_number(reader: PdfReader, destination: Destination) -> int:
    """1-based number of the page a destination is on; 0 if it is on none."""
    index = reader.get_destination_page_number(destination)
    return 0 if index is None else index + 1


def read_outline(reader: PdfReader, items: list[Any]) -> list[Entry]:
    """pypdf gives an entry's children as a list right after the entry."""
    entries: list[Entry] = []
    for item in items:
        if isinstance(item, list):
            entries[-1].children = read_outline(reader, item)
        else:
            assert isinstance(item, Destination)
            page = page_number(reader, item)
            entries.append(Entry(str(item.title), page, float(item.top or 0)))
    return entries


def walk(entries: list[Entry]) -> Iterator[Entry]:
    for entry in entries:
        yield entry
        yield from walk(entry.children)


@pytest.fixture(scope="session")
def book(tmp_path_factory: pytest.TempPathFactory) -> Book:
    try:
        browser.require()
    except browser.NoChromium as error:
        unavailable(f"Chromium at {browser.CHROMIUM}", str(error))
    pdftotext = shutil.which("pdftotext")
    if pdftotext is None:
        unavailable("pdftotext", "install it with `apt-get install -y poppler-utils`")
    out = tmp_path_factory.mktemp("pdf")
    path = build_pdf.build(target=out / "book.pdf", site_dir=out / "pdf-site")
    reader = PdfReader(path)
    # poppler reads the text of every page in a second or two; pypdf's
    # extract_text took forty seconds of CPU for the same pages.
    text = subprocess.run(
        [pdftotext, "-enc", "UTF-8", str(path), "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    texts = text.split("\f")[: len(reader.pages)]
    assert len(texts) == len(reader.pages), "pdftotext read fewer pages than pypdf"
    return Book(
        path=path,
        reader=reader,
        texts=texts,
        outline=read_outline(reader, reader.outline),
        site_url=build_pdf.Book.from_project().site_url,
    )


# --------------------------------------------------------------------------- #
# What the navigation promises
# --------------------------------------------------------------------------- #


def load_nav() -> list[Any]:
    from mkdocs.config import load_config

    return list(load_config(str(ROOT / "mkdocs.yml"))["nav"])


def nav_pages(nav: list[Any]) -> list[str]:
    """Source paths of every page in the navigation, in order."""
    found: list[str] = []

    def collect(items: Any) -> None:
        for item in items:
            if isinstance(item, str):
                found.append(item)
            elif isinstance(item, dict):
                for value in item.values():
                    collect([value] if isinstance(value, str) else value)

    collect(nav)
    return found


def plain(heading: str) -> str:
    """Markdown heading text as the PDF shows it: no id, no code marks."""
    heading = re.sub(r"\s*\{[^}]*\}\s*$", "", heading)
    heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    return heading.replace("`", "").replace("*", "").strip()


def headings(src: str, level: int) -> list[str]:
    lines = (DOCS / src).read_text().splitlines()
    ids = {number for number, found, _ in heading_ids(lines) if found == level}
    return [
        plain(line.lstrip("#"))
        for number, line in outside_fences(lines)
        if number in ids
    ]


CHAPTERS = load_nav()  # each entry of the navigation's top level is a chapter
NAV = nav_pages(CHAPTERS)
PATTERNS = [src for src in NAV if page_kind(DOCS / src) == "pattern"]


# --------------------------------------------------------------------------- #
# The checks
# --------------------------------------------------------------------------- #


def test_page_count_fits_the_content(book: Book) -> None:
    pages = len(book.reader.pages)
    words = sum(len(text.split()) for text in book.texts)
    # The cover, the contents and at least one page per page of the guide.
    assert pages >= len(NAV) + 2, f"{pages} pages for {len(NAV)} pages of the guide"
    # A full page of this layout holds about 450 words of prose, fewer of code.
    assert 120 <= words / pages <= 700, f"{words} words on {pages} pages"


def test_outline_lists_every_page_and_its_sections(book: Book) -> None:
    entries = {entry.title: entry for entry in walk(book.outline)}
    missing = []
    for src in NAV:
        (title,) = headings(src, 1)
        entry = entries.get(title)
        if entry is None:
            missing.append(f"{src}: no outline entry {title!r}")
            continue
        children = {child.title for child in entry.children}
        missing += [
            f"{src}: no outline entry for its section {section!r}"
            for section in headings(src, 2)
            if section not in children
        ]
    assert not missing, "\n".join(missing)


def test_each_chapter_starts_at_the_top_of_a_page(book: Book) -> None:
    top = max(entry.top for entry in walk(book.outline))
    chapters = book.outline[1:]  # after the contents
    assert len(chapters) == len(CHAPTERS)
    late = [e.title for e in chapters if e.top < top - 1]
    assert not late, f"chapters that do not start on a new page: {late}"


def links(book: Book) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, page in enumerate(book.reader.pages, 1):
        for annotation in page.get("/Annots") or []:
            annotation = annotation.get_object()
            if annotation.get("/Subtype") == "/Link":
                yield number, annotation


def test_every_internal_link_lands_on_a_page(book: Book) -> None:
    destinations = book.reader.named_destinations
    internal, broken = 0, []
    for number, link in links(book):
        if "/Dest" not in link:
            continue
        internal += 1
        name = str(link["/Dest"])
        if name not in destinations:
            broken.append(f"page {number}: link to #{name}, which is nowhere")
            continue
        if (
            not 1
            <= page_number(book.reader, destinations[name])
            <= len(book.reader.pages)
        ):
            broken.append(f"page {number}: link to #{name} lands on no page")
    assert not broken, "\n".join(broken)
    assert internal >= len(NAV), f"only {internal} internal links"


def test_external_links_are_web_addresses(book: Book) -> None:
    uris = [
        str(link["/A"]["/URI"])
        for _, link in links(book)
        if "/A" in link and link["/A"].get("/S") == "/URI"
    ]
    assert len(uris) >= len(PATTERNS), f"only {len(uris)} external links"
    odd = [
        uri for uri in uris if not uri.startswith(("https://", "http://", "mailto:"))
    ]
    assert not odd, f"links that work only on the machine that built the PDF: {odd}"


def text_rows(book: Book, number: int) -> list[tuple[float, str]]:
    """(baseline height, text) of each piece of text on a page."""
    rows: list[tuple[float, str]] = []

    def visit(text: str, cm: list[float], tm: list[float], *_: Any) -> None:
        rows.append((tm[4] * cm[1] + tm[5] * cm[3] + cm[5], text.strip()))

    book.reader.pages[number - 1].extract_text(visitor_text=visit)
    return rows


def test_contents_give_the_page_each_entry_links_to(book: Book) -> None:
    contents = book.outline[0]
    assert contents.title == "Contents"
    checked, wrong = set(), []
    for number in range(contents.page, book.outline[1].page):
        rows = text_rows(book, number)
        for page, link in links(book):
            if page != number or "/Dest" not in link:
                continue
            name = str(link["/Dest"])
            low, high = sorted((float(link["/Rect"][1]), float(link["/Rect"][3])))
            printed = {
                found[1]
                for y, text in rows
                # the page number is a piece of its own, after the leader dots
                # (a title may end in a number: "docker stop and PID 1")
                if low <= y <= high and (found := re.fullmatch(r"[.\s]*(\d+)", text))
            }
            expected = str(
                page_number(book.reader, book.reader.named_destinations[name])
            )
            checked.add(name)
            if printed != {expected}:
                wrong.append(
                    f"#{name}: the contents say {printed}, it is on {expected}"
                )
    assert len(checked) >= len(NAV) - len(CHAPTERS), f"{len(checked)} entries"
    assert not wrong, "\n".join(wrong)


def test_no_text_beyond_the_text_column(book: Book) -> None:
    boxes = subprocess.run(
        ["pdftotext", "-bbox", str(book.path), "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    outside = []
    pages = re.split(r"<page ", boxes)[1:]
    assert len(pages) == len(book.reader.pages)
    for number, page in enumerate(pages, 1):
        width = float(re.search(r'width="([\d.]+)"', page)[1])  # type: ignore[index]
        height = float(re.search(r'height="([\d.]+)"', page)[1])  # type: ignore[index]
        for x0, y0, x1, y1, word in re.findall(
            r'<word xMin="([\d.-]+)" yMin="([\d.-]+)" xMax="([\d.-]+)" '
            r'yMax="([\d.-]+)">([^<]*)</word>',
            page,
        ):
            if (
                float(x0) < SIDE_MARGIN - 1
                or float(x1) > width - SIDE_MARGIN + 1
                or float(y0) < 0
                or float(y1) > height
            ):
                outside.append(f"page {number}: {word!r} at x {x0}-{x1}, y {y0}-{y1}")
    assert not outside, "\n".join(outside[:40])


def test_no_diagram_is_left_as_source(book: Book) -> None:
    text = "\n".join(book.texts)
    for source in ("sequenceDiagram", "flowchart TD", "flowchart LR"):
        assert source not in text, f"diagram source {source!r} is printed"
    # An edge between two nodes on one line, not an arrow in other text
    # (docker build prints " ---> Using cache"; an HTML comment ends "-->").
    edge = re.search(
        r"\w(?:\[[^\]\n]*\])? +-->(?:\|[^|\n]*\|)? *\w|\w ?->>\+? ?\w", text
    )
    assert edge is None, f"diagram source {edge[0]!r} is printed"
    assert "Syntax error in text" not in text, "mermaid drew an error"


def test_every_pattern_page_is_there_with_its_address(book: Book) -> None:
    text = "\n".join(book.texts)
    uris = {str(link["/A"]["/URI"]) for _, link in links(book) if "/A" in link}
    for src in PATTERNS:
        (title,) = headings(src, 1)
        assert title in text, f"{src}: its title {title!r} is not in the PDF"
        address = book.site_url + page_url(src)
        assert address in text, f"{src}: its address {address} is not printed"
        assert address in uris, f"{src}: its address {address} is not a link"
        if "\n::: snippets." in (DOCS / src).read_text():
            # The API reference stays on the web: its place links to it.
            api = address + "#api"
            assert api in uris, f"{src}: no link to its API reference {api}"


def test_no_page_is_near_empty(book: Book) -> None:
    short = [
        f"page {number}: {len(text)} characters"
        for number, text in enumerate(book.texts, 1)
        if len(text.strip()) < NEAR_EMPTY_CHARS
    ]
    assert not short, "\n".join(short)


def test_metadata_and_embedded_fonts(book: Book) -> None:
    meta = book.reader.metadata
    assert meta is not None
    assert meta.title == "Concurrency Patterns"
    assert meta.author and meta.subject and meta.creation_date
    catalog = cast(DictionaryObject, book.reader.trailer["/Root"].get_object())
    assert catalog.get("/Lang") == "en"
    fonts: dict[str, DictionaryObject] = {}
    for page in book.reader.pages:
        resources = cast(DictionaryObject, page["/Resources"].get_object())
        for font in cast(DictionaryObject, resources.get("/Font", {})).values():
            font = cast(DictionaryObject, font.get_object())
            fonts[str(font["/BaseFont"])] = font
    assert fonts
    for name, font in fonts.items():
        descendants = cast(ArrayObject, font.get("/DescendantFonts", [font]))
        descriptor = descendants[0].get_object()["/FontDescriptor"]
        assert any(
            key in descriptor for key in ("/FontFile", "/FontFile2", "/FontFile3")
        ), f"{name} is not embedded"


def test_anchor_renaming_is_the_print_site_plugins(built_site: Path) -> None:
    """The build's faster ``update_anchor_ids`` against the plugin's own, on
    every page of the site and on an id whose value crosses a line."""
    from mkdocs_print_site_plugin import urls

    original = urls.update_anchor_ids
    assert original.__module__ == urls.__name__, "the plugin's function is replaced"
    renamed = 0
    for page in sorted(built_site.rglob("index.html")):
        html = page.read_text()
        ours = anchors.update_anchor_ids(html, "key")
        assert ours == original(html, "key"), page
        renamed += ours != html
    assert renamed > 50
    across = '<h2 id="a\nb">A</h2>\n<p><span class="x"><li id="c">C</li></span></p>'
    assert anchors.update_anchor_ids(across, "k") == original(across, "k")


def test_diagrams_drawn_by_an_earlier_build_make_the_same_book(book: Book) -> None:
    """The pre-render again, now with every diagram drawn by the book's own
    build (.cache/build/diagram): none is drawn again, and the book's HTML is
    the same, byte for byte."""
    from tools import build_cache
    from tools.pdf.layout import jobs
    from tools.pdf.prerender import prerender
    from tools.pdf.print_site import page_addresses

    site = book.path.parent / "pdf-site"
    first = (site / "print_page" / "book.html").read_text()
    diagrams = first.count('class="cp-diagram"')
    assert diagrams > 20
    before = build_cache.stats()
    again = prerender(
        site / "print_page" / "index.html",
        build_pdf.Book.from_project(),
        page_addresses(site),
        jobs(),
    )
    after = build_cache.stats()
    assert after.get("diagram.miss", 0) == before.get("diagram.miss", 0)
    assert after.get("diagram.hit", 0) - before.get("diagram.hit", 0) == diagrams
    assert again.document == first
