"""Search finds what readers mean: every query in search_queries.yml, typed into
the site's search box in Chromium, lists its page among the first three results.

The table's `misses` are known misses and are not held to that.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.site.conftest import Server
from tests.site.test_browser import open_page

pytestmark = pytest.mark.browser

QUERIES = Path(__file__).parent / "search_queries.yml"
TOP = 3

# The first result of each page: Material groups a page's sections under it.
TOP_PAGES = """(n) => [...document.querySelectorAll('.md-search-result__item')]
  .slice(0, n).map(item => item.querySelector('a').getAttribute('href'))"""


def load_queries(site: Path) -> list[dict[str, str]]:
    """Every query for a published page, and each pending one whose page is built."""
    table = yaml.safe_load(QUERIES.read_text())
    published: list[dict[str, str]] = table["queries"]
    pending: list[dict[str, str]] = table.get("pending") or []
    return published + [e for e in pending if is_page(site, e["page"])]


def is_page(site: Path, page: str) -> bool:
    return (site / page / "index.html").exists()


def page_path(href: str, server: Server) -> str:
    path = urlsplit(href).path
    return path.removeprefix(urlsplit(server.url).path)


def results_for(page: Any, query: str, server: Server) -> list[str]:
    """Enter the query (as pasted: the theme searches on key-up) and wait for
    the results to settle."""
    box = page.locator(".md-search__input")
    box.focus()
    # Clear the previous query's results first: a slow search would otherwise
    # leave them on screen, steady, and they would be read as this query's.
    box.fill("")
    for _ in range(100):
        if not page.evaluate(TOP_PAGES, TOP):
            break
        page.wait_for_timeout(50)
    box.fill(query[:-1])
    page.keyboard.type(query[-1])
    last: list[str] = []
    steady = 0
    for _ in range(100):
        page.wait_for_timeout(50)
        now = [page_path(h, server) for h in page.evaluate(TOP_PAGES, TOP)]
        steady = steady + 1 if now == last and now else 0
        last = now
        if steady >= 4:
            break
    return last


def test_the_query_table_is_large_and_points_at_pages(site_server: Server) -> None:
    table = yaml.safe_load(QUERIES.read_text())
    assert len(table["queries"]) >= 30, "at least 30 queries for published pages"
    missing = [
        e["page"] for e in table["queries"] if not is_page(site_server.root, e["page"])
    ]
    assert not missing, f"published queries name pages that are not built: {missing}"
    listed = table["queries"] + table.get("pending", []) + table.get("misses", [])
    queries = [e["query"].lower() for e in listed]
    assert len(set(queries)) == len(queries), "a query is listed twice"


@pytest.mark.timeout(300)
def test_search_finds_what_readers_mean(browser: Any, site_server: Server) -> None:
    page = browser.new_page()
    open_page(page, site_server.url)
    misses = []
    for entry in load_queries(site_server.root):
        expected = entry["page"]
        top = results_for(page, entry["query"], site_server)
        if expected not in top:
            misses.append(f"{entry['query']!r}: wanted {expected}, got {top}")
    page.close()
    assert not misses, f"{len(misses)} queries missed:\n" + "\n".join(misses)
