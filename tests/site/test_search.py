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
from tests.site.page_visits import open_page

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


# The theme talks to its search worker in messages (Material's
# SearchMessageType: 2 is a query, 3 its results). Counting both tells when the
# worker has answered the last query typed, and the answer is counted only after
# every listener of its message has run, so by then the theme has drawn it.
COUNT_SEARCHES = """(() => {
  const Native = window.Worker;
  window.searches = { asked: 0, answered: 0 };
  window.Worker = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (event) => {
        if (event.data && event.data.type === 3)
          setTimeout(() => { window.searches.answered += 1; });
      });
    }
    postMessage(message, ...rest) {
      if (message && message.type === 2) window.searches.asked += 1;
      return super.postMessage(message, ...rest);
    }
  };
})();"""

# Once the worker has answered a query asked after the first ``asked`` (and
# every query before it): how many were asked, and the top pages drawn. Null
# until then, which keeps Playwright waiting. (The theme rewrites the query
# before it asks, so the count tells this query's answer, not its text.)
ANSWERED_TOP = f"""([asked, n]) => searches.asked > asked
  && searches.answered === searches.asked
  ? {{ asked: searches.asked, top: ({TOP_PAGES})(n) }} : null"""


def results_for(page: Any, query: str, asked: int) -> tuple[list[str], int]:
    """Type the query as pasted (the theme searches on key-up); return the
    results the theme drew for it, and the count of queries asked so far."""
    page.locator(".md-search__input").fill(query[:-1])
    page.keyboard.type(query[-1])
    answer = page.wait_for_function(ANSWERED_TOP, arg=[asked, TOP], timeout=30_000)
    found = answer.json_value()
    return found["top"], found["asked"]


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
    page.add_init_script(COUNT_SEARCHES)
    open_page(page, site_server.url)
    misses = []
    asked = 0
    for entry in load_queries(site_server.root):
        expected = entry["page"]
        hrefs, asked = results_for(page, entry["query"], asked)
        top = [page_path(href, site_server) for href in hrefs]
        if expected not in top:
            misses.append(f"{entry['query']!r}: wanted {expected}, got {top}")
    page.close()
    assert not misses, f"{len(misses)} queries missed:\n" + "\n".join(misses)
