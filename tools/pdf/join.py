"""Join the parts' PDFs into the book (tools/pdf/layout.py lays them out).

pypdf appends the parts' pages, outlines and named places, and turns each
link from one part to a place in another (``cp-book:<name>``, written by the
pre-render's SPLIT script) into a link to that place in the book.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import cast

from tools.pdf.book import BookError

# A link from one part of the book to a place in another.
PART_LINK = "cp-book:"


def join(files: list[Path], target: Path) -> None:
    """One PDF of the parts: pages, outline, places, links between parts."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import DictionaryObject, NameObject, TextStringObject

    writer = PdfWriter()
    first = PdfReader(files[0])
    for file in files:
        writer.append(file)
    names = set(writer.named_destinations)
    broken = []
    for number, page in enumerate(writer.pages, 1):
        for annotation in page.get("/Annots") or []:
            link = annotation.get_object()
            action = link.get("/A")
            uri = str(action.get("/URI", "")) if action else ""
            if not uri.startswith(PART_LINK):
                continue
            name = urllib.parse.unquote(uri[len(PART_LINK) :])
            if name not in names:
                broken.append(f"page {number}: #{name}")
            del link["/A"]
            link[NameObject("/Dest")] = TextStringObject(name)
    if broken:
        raise BookError("links to no place in the book: " + ", ".join(broken))
    if first.metadata:
        writer.add_metadata(dict(first.metadata))
    catalog = cast(DictionaryObject, first.trailer["/Root"].get_object())
    language = catalog.get("/Lang")
    if language is not None:
        writer._root_object[NameObject("/Lang")] = TextStringObject(str(language))
    writer.write(target)


# --------------------------------------------------------------------------- #
# The command
# --------------------------------------------------------------------------- #
