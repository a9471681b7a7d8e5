"""What the book says about itself: the cover, the PDF's metadata, its errors."""

from __future__ import annotations

import datetime
import html
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


class BookError(RuntimeError):
    """The book cannot be built as it should be; the message says why."""


@dataclass(frozen=True)
class Book:
    """What the cover and the PDF's metadata say."""

    title: str
    subtitle: str
    version: str
    author: str
    site_url: str
    language: str
    rights: str
    built: datetime.date

    @classmethod
    def from_project(cls) -> Book:
        from mkdocs.config import load_config

        config = load_config(str(ROOT / "mkdocs.yml"))
        project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        authors = ", ".join(a["name"] for a in project.get("authors", []))
        # SOURCE_DATE_EPOCH (reproducible builds) fixes the date on the cover.
        epoch = os.environ.get("SOURCE_DATE_EPOCH")
        built = (
            datetime.datetime.fromtimestamp(int(epoch), datetime.UTC).date()
            if epoch
            else datetime.date.today()
        )
        return cls(
            title=config["site_name"],
            subtitle=" ".join((config["site_description"] or "").split()),
            version=project["version"],
            author=authors or config["site_name"],
            site_url=config["site_url"],
            language=config["theme"]["language"],
            rights=config["copyright"] or "",
            built=built,
        )


COVER = """
<section class="cp-cover" id="cover">
  <p class="cp-cover__kicker">A field guide</p>
  <h1 class="cp-cover__title">{title}</h1>
  <p class="cp-cover__subtitle">{subtitle}</p>
  <dl class="cp-cover__facts">
    <dt>Version</dt><dd>{version}</dd>
    <dt>Built</dt><dd>{built}</dd>
    <dt>Online</dt><dd><a href="{site_url}">{site_url}</a></dd>
  </dl>
  <p class="cp-cover__rights">{rights}</p>
</section>
"""


def cover_html(book: Book) -> str:
    return COVER.format(
        title=html.escape(book.title),
        subtitle=html.escape(book.subtitle),
        version=html.escape(book.version),
        built=book.built.isoformat(),
        site_url=html.escape(book.site_url),
        rights=html.escape(book.rights),
    )


def head_metadata(book: Book) -> str:
    """What WeasyPrint writes into the PDF's document information."""
    fields = {
        "author": book.author,
        "description": book.subtitle,
        "keywords": "concurrency, patterns, message queues, webhooks",
        "generator": f"{book.title} {book.version}",
        "dcterms.created": book.built.isoformat(),
    }
    metas = "".join(
        f'<meta name="{name}" content="{html.escape(value)}">'
        for name, value in fields.items()
    )
    return f"<title>{html.escape(book.title)}</title>{metas}"
