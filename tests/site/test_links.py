"""Links that last: the ledger, redirects, link previews, copy-a-link, 404.

A link pasted into a wiki must keep working and must preview well. The ledger
(links/link-ledger.txt) lists every address ever published; these tests
fail when one disappears without a redirect (links/redirects.yml).

The cases that change the site (a moved page, a renamed anchor, a removed
anchor, a reworded heading) share one build of a changed copy of docs/.
"""

from __future__ import annotations

import re
import struct
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import yaml

from tests.site.conftest import Server, serve
from tools.build import CONFIG, build_site
from tools.links import (
    LEDGER_FILE,
    Redirects,
    RedirectsError,
    broken_entries,
    ledger_entries,
    read_ledger,
)
from tools.page_checks import DOCS, split_front_matter

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


# An anchor that is removed without a redirect.
REMOVED = "services"
REWORDED = (
    "## Every Python the guide supports { #python-versions }",
    "## Supported Python versions { #python-versions }",
)
# The redirects of the changed site: the real ones (links/redirects.yml, whose
# moved pages the ledger still lists), plus about/licenses.md moved to
# about/legal.md and its anchor #code renamed to #code-license.
_REAL = Redirects.load()
MOVED = Redirects(
    pages={**_REAL.pages, "about/licenses.md": "about/legal.md"},
    anchors={**_REAL.anchors, "about/legal.md": {"code": "code-license"}},
)


@pytest.fixture(scope="module")
def changed_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site with a page moved, anchors renamed and removed, a heading reworded.

    * about/licenses.md is now about/legal.md, and its #code is #code-license,
      both with redirects;
    * about/testing.md: the heading with #python-versions is reworded and
      keeps its id;
    * about/running-the-code.md: its first section's id changed, with no
      redirect.
    """
    import shutil

    from mkdocs.config import load_config

    root = tmp_path_factory.mktemp("changed")
    docs = root / "docs"
    shutil.copytree(DOCS, docs)
    (docs / "about" / "licenses.md").rename(docs / "about" / "legal.md")
    for page in docs.rglob("*.md"):
        page.write_text(page.read_text().replace("licenses.md", "legal.md"))
    move_heading_id(docs, "about/legal.md", "code", "code-license")
    testing = docs / "about" / "testing.md"
    assert REWORDED[0] in testing.read_text()
    testing.write_text(testing.read_text().replace(*REWORDED))
    move_heading_id(docs, "about/running-the-code.md", REMOVED, REMOVED + "-now")
    redirects = root / "redirects.yml"
    redirects.write_text(
        yaml.safe_dump({"pages": MOVED.pages, "anchors": MOVED.anchors})
    )
    nav = yaml.safe_load(
        yaml.safe_dump(load_config(str(CONFIG))["nav"]).replace(
            "about/licenses.md", "about/legal.md"
        )
    )
    site = root / "site"
    result = build_site(site, docs_dir=docs, nav=nav, redirects=redirects)
    assert result.returncode == 0, result.stdout + result.stderr
    return site


def changed_docs(site: Path) -> Path:
    return site.parent / "docs"


@pytest.mark.timeout(600)  # builds the changed site
def test_removing_an_anchor_without_a_redirect_fails_with_the_entry(
    changed_site: Path,
) -> None:
    problems = broken_entries(changed_site, MOVED, docs=changed_docs(changed_site))
    entry = f"about/running-the-code/#{REMOVED}"
    assert list(problems) == [entry]
    message = problems[entry]
    assert "link-ledger.txt:" in message
    assert (
        f"add `{REMOVED}: <new-id>` under anchors: about/running-the-code.md" in message
    )

    covered = Redirects(
        pages=MOVED.pages,
        anchors={
            **MOVED.anchors,
            "about/running-the-code.md": {REMOVED: REMOVED + "-now"},
        },
    )
    assert broken_entries(changed_site, covered, docs=changed_docs(changed_site)) == {}


@pytest.mark.timeout(600)  # builds the changed site
def test_a_moved_page_without_a_redirect_fails_with_the_entry(
    changed_site: Path,
) -> None:
    problems = broken_entries(
        changed_site, Redirects(), docs=changed_docs(changed_site)
    )
    assert "about/licenses/" in problems
    assert "the page about/licenses/ is gone" in problems["about/licenses/"]


@pytest.mark.timeout(600)  # builds the changed site
def test_renaming_a_heading_keeps_its_anchor(changed_site: Path) -> None:
    html = (changed_site / "about" / "testing" / "index.html").read_text()
    assert re.search(r'<h2 id="python-versions">Supported Python versions', html)
    assert not [
        entry
        for entry in broken_entries(
            changed_site, MOVED, docs=changed_docs(changed_site)
        )
        if "testing" in entry
    ]


def test_a_name_gone_from_the_api_reference_lands_on_the_api_section(
    tmp_path: Path,
) -> None:
    docs, site = tmp_path / "docs", tmp_path / "site"
    (docs / "topic").mkdir(parents=True)
    (docs / "topic" / "page.md").write_text("# Page { #page }\n")
    (site / "topic" / "page").mkdir(parents=True)
    html = site / "topic" / "page" / "index.html"
    entries = [(1, "topic/page/#snippets.topic.page.demo"), (2, "topic/page/#gone")]
    html.write_text('<h1 id="page">Page</h1><h2 id="api">API reference</h2>')
    assert list(broken_entries(site, Redirects(), entries, docs=docs)) == [
        "topic/page/#gone"
    ]
    html.write_text('<h1 id="page">Page</h1>')  # no API section to land on
    assert len(broken_entries(site, Redirects(), entries, docs=docs)) == 2


def test_two_pages_merged_into_one_keep_their_own_anchors(tmp_path: Path) -> None:
    """Each moved page's #problem lands on its own section of the merged page."""
    docs, site = tmp_path / "docs", tmp_path / "site"
    (docs / "topic").mkdir(parents=True)
    (docs / "topic" / "both.md").write_text("# Both { #both }\n")
    (site / "topic" / "both").mkdir(parents=True)
    (site / "topic" / "both" / "index.html").write_text(
        '<h1 id="both">Both</h1><h2 id="problem">Problem</h2>'
        '<h3 id="a-problem">A</h3><h3 id="b-problem">B</h3>'
    )
    merged = Redirects(
        pages={"topic/a.md": "topic/both.md", "topic/b.md": "topic/both.md"},
        anchors={
            "topic/a.md": {"problem": "a-problem", "gone": "a-gone"},
            "topic/b.md": {"problem": "b-old"},
            "topic/both.md": {"b-old": "b-problem"},
        },
    )
    assert merged.moved_anchors("topic/a.md")["problem"] == "a-problem"
    assert merged.moved_anchors("topic/b.md") == {
        "problem": "b-problem",  # through the merged page's own rename
        "b-old": "b-problem",
    }
    entries = [
        (1, "topic/a/#problem"),
        (2, "topic/b/#problem"),
        (3, "topic/a/#gone"),  # forwarded to an id the page does not have
        (4, "topic/b/#both"),
    ]
    assert list(broken_entries(site, merged, entries, docs=docs)) == ["topic/a/#gone"]


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


@pytest.mark.browser
@pytest.mark.timeout(600)  # builds the changed site
@pytest.mark.parametrize(
    ("old", "lands_on"),
    [
        ("about/licenses/", "about/legal/"),
        ("about/licenses/#prose", "about/legal/#prose"),
        ("about/licenses/#code", "about/legal/#code-license"),
        ("about/legal/#code", "about/legal/#code-license"),
        (
            "lazy-loading/thread-safe-lazy-init/#snippets.lazy_loading.thread_safe_lazy_init.gone",
            "lazy-loading/thread-safe-lazy-init/#api",
        ),
        # two real pages merged into one (links/redirects.yml): each old
        # #problem lands on its own page's section
        (
            "code-splitting/bounded-fan-out/#problem",
            "code-splitting/parallel-batch-jobs/#fan-out-problem",
        ),
        (
            "code-splitting/splitter-aggregator/#problem",
            "code-splitting/parallel-batch-jobs/#aggregator-problem",
        ),
    ],
)
def test_an_old_link_lands_on_the_new_place(
    browser: Any, changed_site: Path, site_url: str, old: str, lands_on: str
) -> None:
    with serve(changed_site, site_url) as server:
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


@pytest.mark.parametrize(
    "source", source_pages(), ids=lambda p: str(p.relative_to(DOCS))
)
def test_page_previews_well_when_pasted(
    built_site: Path, site_url: str, source: Path
) -> None:
    src = source.relative_to(DOCS).as_posix()
    url = src[:-3] + "/" if not src.endswith("index.md") else src[: -len("index.md")]
    html = built_site / url / "index.html"
    parser = MetaTags()
    parser.feed(html.read_text())
    tags = parser.tags
    meta, _, _ = split_front_matter(source, source.read_text())
    description = " ".join(str(meta["description"]).split())

    assert tags["canonical"] == site_url + url
    assert tags["og:url"] == tags["canonical"]
    assert tags["og:site_name"] == "Concurrency Patterns"
    assert tags["og:title"] == tags["twitter:title"] == meta["title"]
    assert " ".join(tags["description"].split()) == description
    assert " ".join(tags["og:description"].split()) == description
    assert tags["twitter:description"] == tags["og:description"]
    assert tags["twitter:card"] == "summary_large_image"
    assert tags["og:image"] == tags["twitter:image"]
    assert tags["og:image"].startswith(site_url + "assets/previews/")
    image = built_site / tags["og:image"].removeprefix(site_url)
    assert image.is_file(), f"{image} was not generated"
    assert png_size(image) == (1200, 630)


def test_sitemap_lists_every_page(built_site: Path, site_url: str) -> None:
    sitemap = (built_site / "sitemap.xml").read_text()
    listed = set(re.findall(r"<loc>([^<]+)</loc>", sitemap))
    for source in source_pages():
        src = source.relative_to(DOCS).as_posix()
        url = (
            src[:-3] + "/" if not src.endswith("index.md") else src[: -len("index.md")]
        )
        assert site_url + url in listed, f"{url} is missing from sitemap.xml"


# --------------------------------------------------------------------------- #
# Copy a link, and the 404 page, in the browser
# --------------------------------------------------------------------------- #


@pytest.mark.browser
@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("Copy link", "{site}lazy-loading/thread-safe-lazy-init/#see-it-break"),
        (
            "Copy Markdown link",
            "[Thread-safe lazy initialization — See it break]("
            "{site}lazy-loading/thread-safe-lazy-init/#see-it-break)",
        ),
    ],
)
def test_copy_a_link_to_a_section(
    browser: Any, site_server: Server, site_url: str, choice: str, expected: str
) -> None:
    context = browser.new_context()
    context.grant_permissions(
        ["clipboard-read", "clipboard-write"], origin=f"http://{site_server.host}"
    )
    page = context.new_page()
    page.goto(site_server.url + "lazy-loading/thread-safe-lazy-init/")
    heading = page.locator("h2#see-it-break")
    heading.hover()
    heading.get_by_role(
        "button", name="Copy a link to the section See it break"
    ).click()
    heading.get_by_role("menuitem", name=choice, exact=True).click()
    page.get_by_role("status").filter(has_text="Copied").wait_for(timeout=5_000)
    assert page.evaluate("navigator.clipboard.readText()") == expected.format(
        site=site_url
    )
    context.close()


@pytest.mark.browser
def test_not_found_page_suggests_the_closest_pages(
    browser: Any, site_server: Server, site_url: str
) -> None:
    page = browser.new_page()
    response = page.goto(
        site_server.url + "lazy-loading/thread-safe-lazy-initialisation/"
    )
    assert response is not None and response.status == 404
    first = page.locator("#cp-suggestions li a").first
    page.wait_for_function(
        "() => document.querySelector('#cp-suggestions a')"
        ".getAttribute('href').includes('thread-safe-lazy-init')",
        timeout=10_000,
    )
    base = urlsplit(site_url).path
    # (Once, on a loaded machine, the attribute read back absolute: compare
    # the address the link leads to.)
    href = urlsplit(urljoin(page.url, first.get_attribute("href") or "")).path
    assert href == base + "lazy-loading/thread-safe-lazy-init/"
    page.close()
