"""Links that last: the ledger, redirects, link previews, copy-a-link, 404.

A link pasted into a wiki must keep working and must preview well. The ledger
(overrides/link-ledger.txt) lists every address ever published; these tests
fail when one disappears without a redirect (overrides/redirects.yml).
"""

from __future__ import annotations

import re
import struct
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml

from overrides.hooks.links import (
    LEDGER_FILE,
    Redirects,
    RedirectsError,
    broken_entries,
    ledger_entries,
    read_ledger,
)
from overrides.hooks.page_checks import DOCS, split_front_matter
from tests.site.conftest import SITE_URL, Server, build_site, serve

# --------------------------------------------------------------------------- #
# The ledger
# --------------------------------------------------------------------------- #


def test_ledger_covers_every_page_and_anchor(built_site: Path) -> None:
    ledger = {entry for _, entry in read_ledger()}
    missing = [entry for entry in ledger_entries(built_site) if entry not in ledger]
    assert not missing, (
        f"{len(missing)} published addresses are not in {LEDGER_FILE.name}; "
        "run `make ledger` and commit it:\n  " + "\n  ".join(missing[:20])
    )


def test_every_ledger_entry_still_resolves(built_site: Path) -> None:
    problems = broken_entries(built_site, Redirects.load())
    assert not problems, "\n".join(problems.values())


def move_heading_id(docs: Path, page: str, old: str, new: str) -> None:
    path = docs / page
    text = path.read_text()
    assert f"{{ #{old} }}" in text
    path.write_text(text.replace(f"{{ #{old} }}", f"{{ #{new} }}"))


def test_removing_an_anchor_without_a_redirect_fails_with_the_entry(
    docs_copy: Path, tmp_path: Path
) -> None:
    move_heading_id(docs_copy, "about/testing.md", "python-versions", "versions")
    result = build_site(tmp_path / "site", docs_dir=docs_copy)
    assert result.returncode == 0, result.stderr
    known = Redirects.load()  # the redirects the guide already has
    problems = broken_entries(tmp_path / "site", known)
    assert list(problems) == ["about/testing/#python-versions"]
    message = problems["about/testing/#python-versions"]
    assert "link-ledger.txt:" in message
    assert "add `python-versions: <new-id>` under anchors: about/testing.md" in message

    anchors = {**known.anchors, "about/testing.md": {"python-versions": "versions"}}
    covered = Redirects(pages=known.pages, anchors=anchors)
    assert broken_entries(tmp_path / "site", covered) == {}


def test_renaming_a_heading_keeps_its_anchor(docs_copy: Path, tmp_path: Path) -> None:
    page = docs_copy / "about" / "testing.md"
    old = "## Every Python the guide supports { #python-versions }"
    assert old in page.read_text()
    page.write_text(
        page.read_text().replace(old, "## Supported Python versions { #python-versions }")
    )
    result = build_site(tmp_path / "site", docs_dir=docs_copy)
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "site" / "about" / "testing" / "index.html").read_text()
    assert re.search(r'<h2 id="python-versions">Supported Python versions', html)
    assert broken_entries(tmp_path / "site", Redirects.load()) == {}


def test_malformed_redirects_file_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "redirects.yml"
    bad.write_text("pages:\n  old.md: new.html\n")
    with pytest.raises(RedirectsError, match=r"redirects.yml:2: page redirects map"):
        Redirects.load(bad)
    bad.write_text("pages: {a.md: b.md\n")
    with pytest.raises(RedirectsError, match=r"redirects.yml:\d+: not valid YAML"):
        Redirects.load(bad)


# --------------------------------------------------------------------------- #
# Redirects, in the browser
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def moved_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site with about/licenses.md moved to about/legal.md, and an anchor renamed."""
    import shutil

    root = tmp_path_factory.mktemp("moved")
    docs = root / "docs"
    shutil.copytree(DOCS, docs)
    (docs / "about" / "licenses.md").rename(docs / "about" / "legal.md")
    for page in docs.rglob("*.md"):
        page.write_text(page.read_text().replace("licenses.md", "legal.md"))
    move_heading_id(docs, "about/legal.md", "code", "code-license")
    redirects = root / "redirects.yml"
    redirects.write_text(
        yaml.safe_dump(
            {
                "pages": {"about/licenses.md": "about/legal.md"},
                "anchors": {"about/legal.md": {"code": "code-license"}},
            }
        )
    )
    site = root / "site"
    result = build_site(
        site,
        docs_dir=docs,
        nav_moves={"about/licenses.md": "about/legal.md"},
        redirects=redirects,
    )
    assert result.returncode == 0, result.stderr
    return site


@pytest.mark.browser
@pytest.mark.parametrize(
    ("old", "lands_on"),
    [
        ("about/licenses/", "about/legal/"),
        ("about/licenses/#prose", "about/legal/#prose"),
        ("about/licenses/#code", "about/legal/#code-license"),
        ("about/legal/#code", "about/legal/#code-license"),
    ],
)
def test_an_old_link_lands_on_the_new_place(
    browser: Any, moved_site: Path, old: str, lands_on: str
) -> None:
    with serve(moved_site) as server:
        page = browser.new_page()
        page.goto(server.url + old)
        page.wait_for_url(server.url + lands_on, timeout=10_000)
        anchor = lands_on.partition("#")[2]
        if anchor:
            assert page.locator(f"#{anchor}").is_visible()
        page.close()


# --------------------------------------------------------------------------- #
# Link previews
# --------------------------------------------------------------------------- #


class MetaTags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "meta" and ("property" in a or "name" in a):
            self.tags[a.get("property") or a["name"]] = a.get("content", "")
        if tag == "link" and a.get("rel") == "canonical":
            self.tags["canonical"] = a.get("href", "")


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def source_pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


@pytest.mark.parametrize("source", source_pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_page_previews_well_when_pasted(built_site: Path, source: Path) -> None:
    src = source.relative_to(DOCS).as_posix()
    url = src[:-3] + "/" if not src.endswith("index.md") else src[: -len("index.md")]
    html = built_site / url / "index.html"
    parser = MetaTags()
    parser.feed(html.read_text())
    tags = parser.tags
    meta, _, _ = split_front_matter(source, source.read_text())
    description = " ".join(str(meta["description"]).split())

    assert tags["canonical"] == SITE_URL + url
    assert tags["og:url"] == tags["canonical"]
    assert tags["og:site_name"] == "Concurrency Patterns"
    assert tags["og:title"] == tags["twitter:title"] == meta["title"]
    assert " ".join(tags["description"].split()) == description
    assert " ".join(tags["og:description"].split()) == description
    assert tags["twitter:description"] == tags["og:description"]
    assert tags["twitter:card"] == "summary_large_image"
    assert tags["og:image"] == tags["twitter:image"]
    assert tags["og:image"].startswith(SITE_URL + "assets/previews/")
    image = built_site / tags["og:image"].removeprefix(SITE_URL)
    assert image.is_file(), f"{image} was not generated"
    assert png_size(image) == (1200, 630)


def test_sitemap_lists_every_page(built_site: Path) -> None:
    sitemap = (built_site / "sitemap.xml").read_text()
    listed = set(re.findall(r"<loc>([^<]+)</loc>", sitemap))
    for source in source_pages():
        src = source.relative_to(DOCS).as_posix()
        url = src[:-3] + "/" if not src.endswith("index.md") else src[: -len("index.md")]
        assert SITE_URL + url in listed, f"{url} is missing from sitemap.xml"


# --------------------------------------------------------------------------- #
# Copy a link, and the 404 page, in the browser
# --------------------------------------------------------------------------- #


@pytest.mark.browser
@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("Copy link", SITE_URL + "lazy-loading/thread-safe-lazy-init/#see-it-break"),
        (
            "Copy Markdown link",
            "[Thread-safe lazy initialization — See it break]("
            + SITE_URL
            + "lazy-loading/thread-safe-lazy-init/#see-it-break)",
        ),
    ],
)
def test_copy_a_link_to_a_section(
    browser: Any, site_server: Server, choice: str, expected: str
) -> None:
    context = browser.new_context()
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site_server.url)
    page = context.new_page()
    page.goto(site_server.url + "lazy-loading/thread-safe-lazy-init/")
    heading = page.locator("h2#see-it-break")
    heading.hover()
    heading.get_by_role("button", name="Copy a link to the section See it break").click()
    heading.get_by_role("menuitem", name=choice, exact=True).click()
    page.get_by_role("status").filter(has_text="Copied").wait_for(timeout=5_000)
    assert page.evaluate("navigator.clipboard.readText()") == expected
    context.close()


@pytest.mark.browser
def test_not_found_page_suggests_the_closest_pages(
    browser: Any, site_server: Server
) -> None:
    page = browser.new_page()
    response = page.goto(site_server.url + "lazy-loading/thread-safe-lazy-initialisation/")
    assert response is not None and response.status == 404
    first = page.locator("#cp-suggestions li a").first
    page.wait_for_function(
        "() => document.querySelector('#cp-suggestions a')"
        ".getAttribute('href').includes('thread-safe-lazy-init')",
        timeout=10_000,
    )
    assert first.get_attribute("href") == "/lazy-loading/thread-safe-lazy-init/"
    page.close()
