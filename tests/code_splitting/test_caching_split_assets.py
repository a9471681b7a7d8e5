"""Caching split assets: headers, second visits and renamed chunks, in Chromium.

The page's app (snippets/code_splitting/caching_split_assets/app/) is built
with the real Vite and webpack and served on 127.0.0.1 with a Cache-Control
policy, an ETag and 304 answers; Chromium's DevTools protocol tells which
responses came from its cache (snippets/support/code_splitting_caching.py).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from snippets.code_splitting.caching_split_assets import (
    IMMUTABLE,
    cache_control,
    is_hashed,
)
from snippets.support.code_splitting_caching import (
    Fetched,
    build_app,
    scripts,
    serve_cached,
    visit,
    webpack_options,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

FETCH_FAILED = "TypeError: Failed to fetch dynamically imported module: "


def html_for_an_hour(path: str) -> str:
    return "max-age=3600" if path == "/index.html" else cache_control(path)


@pytest.mark.parametrize(
    ("path", "hashed"),
    [
        ("/index.html", False),
        ("/assets/report-Cmu44hvl.js", True),
        ("/assets/help-DalKsd7_.js", True),
        ("/940.beef8f34.js", True),
        ("/main.7645e30a.js", True),
        ("/my-settings.js", False),
        ("/sw.js", False),
    ],
)
def test_only_hashed_files_are_immutable(path: str, hashed: bool) -> None:
    assert is_hashed(path) is hashed
    assert cache_control(path) == (IMMUTABLE if hashed else "no-cache")


@pytest.fixture(scope="module")
def releases(web_bed: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("caching")
    return {
        name: build_app("vite", folder / name, release=name) for name in ("v1", "v2")
    }


def two_visits(chromium: Any, site: Path, policy: Any) -> tuple[Fetched, Fetched]:
    with serve_cached(site, policy) as host:
        context = chromium.new_context()
        first, second = visit(context, host), visit(context, host)
        context.close()
    return first, second


# --------------------------------------------------------------------------- #
# See it break
# --------------------------------------------------------------------------- #


def test_no_cache_on_hashed_files_revalidates_every_chunk(
    chromium: Any, releases: dict[str, Path]
) -> None:
    first, second = two_visits(chromium, releases["v1"], lambda path: "no-cache")
    assert set(first.sources.values()) == {"200"} and len(first.sources) == 4
    assert set(second.sources.values()) == {"304"} and len(second.sources) == 4


def test_html_cached_for_an_hour_keeps_a_deleted_release(
    chromium: Any, releases: dict[str, Path], tmp_path: Path
) -> None:
    site = tmp_path / "site"
    shutil.copytree(releases["v1"], site)
    with serve_cached(site, html_for_an_hour) as host:
        context = chromium.new_context()
        visit(context, host)
        shutil.rmtree(site)
        shutil.copytree(releases["v2"], site)  # the deploy deletes v1
        second = visit(context, host, "#/settings")
        context.close()
    assert second.sources["/index.html"] == "disk cache"
    (chunk,) = [path for path in second.sources if "/settings-" in path]
    assert second.sources[chunk] == "404"
    assert second.result == FETCH_FAILED + host.url + chunk.lstrip("/")


# --------------------------------------------------------------------------- #
# The fix
# --------------------------------------------------------------------------- #


def test_the_headers_chromium_receives(
    chromium: Any, releases: dict[str, Path]
) -> None:
    first, _ = two_visits(chromium, releases["v1"], cache_control)
    assert first.headers["/index.html"]["cache-control"] == "no-cache"
    assets = [path for path in first.headers if path.startswith("/assets/")]
    assert len(assets) == 3
    for path in assets:
        headers = first.headers[path]
        assert headers["cache-control"] == "public, max-age=31536000, immutable"
        assert headers["etag"].startswith('"')


def test_a_second_visit_asks_only_for_the_html(
    chromium: Any, releases: dict[str, Path]
) -> None:
    _, second = two_visits(chromium, releases["v1"], cache_control)
    assert second.sources.pop("/index.html") == "304"
    assert set(second.sources.values()) == {"disk cache"} and len(second.sources) == 3
    assert second.result == "ok: report, release v1"


def test_a_reload_takes_the_chunks_from_memory(
    chromium: Any, releases: dict[str, Path]
) -> None:
    with serve_cached(releases["v1"], cache_control) as host:
        context = chromium.new_context()
        seen = visit(context, host, reload=True)
        context.close()
    assert seen.sources.pop("/index.html") == "304"
    assert set(seen.sources.values()) == {"memory cache"}


def test_html_revalidated_finds_the_new_release(
    chromium: Any, releases: dict[str, Path], tmp_path: Path
) -> None:
    site = tmp_path / "site"
    shutil.copytree(releases["v1"], site)
    with serve_cached(site, cache_control) as host:
        context = chromium.new_context()
        visit(context, host)
        shutil.rmtree(site)
        shutil.copytree(releases["v2"], site)
        second = visit(context, host, "#/settings")
        context.close()
    assert second.sources["/index.html"] == "200"
    assert second.result == "ok: settings, release v2"
    # The shared chunk did not change from v1 to v2: same name, from the cache.
    (shared,) = [path for path in second.sources if "/format-" in path]
    assert second.sources[shared] == "disk cache"


# --------------------------------------------------------------------------- #
# Which files a one-line change renames
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def renamed(web_bed: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    options = webpack_options()
    folder = tmp_path_factory.mktemp("renames")

    def count(bundler: str, name: str, kind: str) -> tuple[int, int]:
        optimization = options.get(name, {})
        base = scripts(build_app(bundler, folder / "base", optimization=optimization))
        into = folder / "changed"
        after = scripts(build_app(bundler, into, optimization=optimization, kind=kind))
        return len(base - after), len(base)

    yield count


def test_natural_ids_rename_chunks_that_did_not_change(renamed: Any) -> None:
    assert renamed("webpack", "natural", "new route") == (3, 4)


def test_deterministic_ids_rename_only_the_entry(renamed: Any) -> None:
    assert renamed("webpack", "deterministic", "new route") == (1, 4)


def test_deterministic_ids_are_webpack_defaults_in_production(
    web_bed: Path, tmp_path: Path
) -> None:
    options = webpack_options()
    split_only = {"splitChunks": options["deterministic"]["splitChunks"]}
    default = scripts(build_app("webpack", tmp_path / "a", optimization=split_only))
    explicit = build_app(
        "webpack", tmp_path / "b", optimization=options["deterministic"]
    )
    assert default == scripts(explicit)


def test_a_runtime_chunk_keeps_the_entry_when_a_route_changes(renamed: Any) -> None:
    assert renamed("webpack", "runtimeSingle", "route") == (2, 5)


def test_vite_renames_every_importer_of_a_changed_shared_chunk(renamed: Any) -> None:
    assert renamed("vite", "", "shared") == (4, 4)
    assert renamed("vite", "", "route") == (2, 4)
