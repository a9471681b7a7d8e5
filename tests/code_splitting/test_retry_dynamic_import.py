"""Retrying a failed dynamic import() in Chromium, plain ES modules and webpack.

The page's site (snippets/code_splitting/retry_dynamic_import/) is served on
127.0.0.1 by a host that fails the first requests for a module with 503, 404,
a reset connection or JavaScript that does not parse, and counts every request
it receives (snippets/support/code_splitting_flaky.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from snippets.code_splitting.retry_dynamic_import import (
    backoff_delays,
    longest_wait_ms,
)
from snippets.support.code_splitting_flaky import (
    PACKAGE,
    ROUTE,
    STORE,
    FlakyHost,
    build_webpack_app,
    open_bed,
    serve_flaky,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

FETCH_FAILED = "TypeError: Failed to fetch dynamically imported module: "
THROWS = "/site/chunks/throws.js"


@pytest.fixture
def host() -> Iterator[FlakyHost]:
    with serve_flaky(PACKAGE) as served:
        yield served


@pytest.fixture
def page(chromium: Any, host: FlakyHost) -> Iterator[Any]:
    opened = open_bed(chromium, host.url + "site/")
    yield opened
    opened.context.close()


def url_of(host: FlakyHost, path: str) -> str:
    return host.url + path.lstrip("/")


def import_once(page: Any, url: str) -> str:
    result: str = page.evaluate("url => bed.importOnce(url)", url)
    return result


# --------------------------------------------------------------------------- #
# See it break
# --------------------------------------------------------------------------- #


def test_a_loader_that_keeps_the_promise_fails_forever(
    page: Any, host: FlakyHost
) -> None:
    host.fail(ROUTE, ["503"])
    url = url_of(host, ROUTE)
    results = page.evaluate("url => bed.memoised(url, 3)", url)
    assert results == [FETCH_FAILED + url] * 3
    assert host.requests(ROUTE) == 1  # the host would answer now: nobody asks
    assert import_once(page, url) == "ok: route"


def test_a_module_that_did_not_parse_fails_again_without_a_request(
    page: Any, host: FlakyHost
) -> None:
    host.fail(ROUTE, ["garbage"])
    url = url_of(host, ROUTE)
    assert import_once(page, url) == "SyntaxError: Unexpected token '='"
    assert import_once(page, url) == "SyntaxError: Unexpected token '='"
    assert host.requests(ROUTE) == 1  # the module map kept the parse error
    assert import_once(page, url + "?retry=1") == "ok: route"
    assert host.requests(ROUTE) == 2


def test_a_cache_busting_url_is_a_second_module_instance(
    page: Any, host: FlakyHost
) -> None:
    seen = page.evaluate("url => bed.duplicate(url)", url_of(host, STORE))
    assert seen == {"sameAgain": True, "sameBusted": False, "counts": [1, 2, 1]}
    assert host.counts[STORE] == 1 and host.counts[STORE + "?retry=1"] == 1


# --------------------------------------------------------------------------- #
# What Chromium and webpack do on a second attempt
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("answer", ["503", "404"])
def test_chromium_fetches_a_failed_module_again(
    page: Any, host: FlakyHost, answer: str
) -> None:
    host.fail(ROUTE, [answer])
    url = url_of(host, ROUTE)
    assert import_once(page, url) == FETCH_FAILED + url
    assert host.requests(ROUTE) == 1
    assert import_once(page, url) == "ok: route"
    assert host.requests(ROUTE) == 2


def test_chromium_retries_one_reset_connection_by_itself(
    page: Any, host: FlakyHost
) -> None:
    host.fail(ROUTE, ["reset"])
    assert import_once(page, url_of(host, ROUTE)) == "ok: route"
    assert host.requests(ROUTE) == 2
    host.fail(ROUTE, ["reset", "reset"])
    other = url_of(host, ROUTE) + "?second"
    assert import_once(page, other) == FETCH_FAILED + other
    assert host.requests(ROUTE) == 4


@pytest.fixture(scope="module")
def webpack_app(web_bed: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return build_webpack_app(tmp_path_factory.mktemp("retry-import") / "webpack")


@pytest.mark.parametrize("answer", ["503", "404", "garbage"])
def test_webpack_loads_a_failed_chunk_again(
    chromium: Any, webpack_app: tuple[Path, str], answer: str
) -> None:
    app, chunk = webpack_app
    with serve_flaky(app, {chunk: [answer]}) as host:
        page = open_bed(chromium, host.url)
        first = page.evaluate("() => bed.importOnce()")
        assert first.startswith("ChunkLoadError: Loading chunk ")
        assert first.endswith(" failed.")
        assert host.requests(chunk) == 1
        assert page.evaluate("() => bed.importOnce()") == "ok: route"
        assert host.requests(chunk) == 2
        page.context.close()


def test_webpack_recovers_with_the_retry(
    chromium: Any, webpack_app: tuple[Path, str]
) -> None:
    app, chunk = webpack_app
    with serve_flaky(app, {chunk: ["503", "503"]}) as host:
        page = open_bed(chromium, host.url)
        seen = page.evaluate("() => bed.retry()")
        assert seen == {"result": "ok: route", "waits": [200, 400]}
        assert host.requests(chunk) == 3
        page.context.close()


# --------------------------------------------------------------------------- #
# The bounded retry
# --------------------------------------------------------------------------- #


def test_the_retry_recovers_after_three_failures(page: Any, host: FlakyHost) -> None:
    host.fail(ROUTE, ["503"] * 3)
    started = time.monotonic()
    seen = page.evaluate("url => bed.retry(url)", url_of(host, ROUTE))
    elapsed = time.monotonic() - started
    assert seen["result"] == "ok: route"
    assert seen["attempts"] == 4 and seen["waits"] == backoff_delays(4) == [
        200,
        400,
        800,
    ]
    assert host.requests(ROUTE) == 4
    # Time to recover: the waits, plus four requests on loopback.
    assert longest_wait_ms(4) == 1400 <= seen["ms"] < 1400 + 2000
    assert elapsed >= 1.4


def test_the_retry_gives_up_after_its_attempts(page: Any, host: FlakyHost) -> None:
    host.fail(ROUTE, ["503"] * 5)
    url = url_of(host, ROUTE)
    seen = page.evaluate("url => bed.retry(url)", url)
    assert seen["result"] == FETCH_FAILED + url
    assert seen["attempts"] == 4 and host.requests(ROUTE) == 4


def test_the_retry_leaves_an_error_of_the_module_itself_alone(
    page: Any, host: FlakyHost
) -> None:
    seen = page.evaluate("url => bed.retry(url)", url_of(host, THROWS))
    assert seen["result"] == "RangeError: the route's own code failed"
    assert seen["attempts"] == 1 and seen["waits"] == []
    assert host.requests(THROWS) == 1


def test_the_retry_stops_when_cancelled(page: Any, host: FlakyHost) -> None:
    host.fail(ROUTE, ["503"] * 5)
    # Attempt 1, wait, attempt 2: the caller aborts as the second wait begins.
    result = page.evaluate("url => bed.aborted(url, 2)", url_of(host, ROUTE))
    assert result == "AbortError: signal is aborted without reason"
    assert host.requests(ROUTE) == 2


def test_the_retry_busts_the_url_where_the_module_map_kept_the_failure(
    page: Any, host: FlakyHost
) -> None:
    host.fail(ROUTE, ["garbage", "garbage"])
    url = url_of(host, ROUTE)
    same = page.evaluate("url => bed.retry(url)", url)
    assert same["result"] == "SyntaxError: Unexpected token '='"
    assert same["attempts"] == 1  # a SyntaxError is not a load failure
    busted = page.evaluate("url => bed.retry(url, {bust: true})", url + "?v=1")
    assert busted["result"] == "ok: route"
    assert host.counts[ROUTE + "?v=1"] == 1  # the second bad answer
    assert host.counts[ROUTE + "?v=1&retry=1"] == 1


def test_a_forgetting_loader_tries_again_on_the_next_call(
    page: Any, host: FlakyHost
) -> None:
    host.fail(ROUTE, ["503"] * 5)
    url = url_of(host, ROUTE)
    seen = page.evaluate("url => bed.retrying(url, 2)", url)
    assert seen["results"] == [FETCH_FAILED + url, "ok: route"]
    assert seen["waits"] == [200, 400, 800, 200]
    assert host.requests(ROUTE) == 6


def test_the_budget_matches_the_javascript_with_jitter(
    page: Any, host: FlakyHost
) -> None:
    for jitter in (0.0, 0.5):
        host.fail(ROUTE, ["503"] * 3)
        seen = page.evaluate(
            "([url, r]) => bed.retry(url + '?j=' + r, {random: () => r})",
            [url_of(host, ROUTE), jitter],
        )
        assert seen["waits"] == backoff_delays(4, jitter=jitter)
    assert backoff_delays(8)[-2:] == [5000, 5000]  # capped at cap_ms
