"""ChunkLoadError and failed dynamic imports after a deploy, in Chromium.

Release v1 and v2 of snippets/web/chunk-load are built once per module with the
real Vite and webpack from the committed lockfile. Each visit opens v1 in
Debian's Chromium, deploys v2 with ``publish`` and follows the link to the
lazily loaded route (snippets/support/code_splitting_chunk_load.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from snippets.code_splitting.chunk_load_errors import publish
from snippets.support import frontend
from snippets.support.code_splitting_chunk_load import Releases, releases, visit
from tools.errors import ErrorRecorder

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

BUNDLERS = frontend.BUNDLERS
VITE_ERROR = "TypeError: Failed to fetch dynamically imported module: "
MIME_ERROR = (
    "Failed to load module script: Expected a JavaScript-or-Wasm module script "
    'but the server responded with a MIME type of "text/html". Strict MIME type '
    "checking is enforced for module scripts per HTML spec."
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def bundler_version(bundler: str) -> str:
    """The installed bundler's version, from its package.json in the test bed."""
    package = frontend.WEB / "node_modules" / bundler / "package.json"
    return str(json.loads(package.read_text())["version"])


@pytest.fixture(scope="module")
def builds(
    web_bed: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Releases]]:
    folder = tmp_path_factory.mktemp("chunk-load-builds")
    yield {bundler: releases(bundler, folder) for bundler in BUNDLERS}


# --------------------------------------------------------------------------- #
# See it break: the errors Chromium reports
# --------------------------------------------------------------------------- #


def test_vite_deleted_chunk_rejects_the_import(
    chromium: Any, builds: dict[str, Releases], error_record: ErrorRecorder
) -> None:
    seen = visit(chromium, builds["vite"])
    (error,) = seen.results
    assert error.startswith(VITE_ERROR), error
    assert error.endswith(".js") and "/assets/settings-" in error
    error_record(
        error,
        id="vite-import-failed",
        component="Chromium",
        version=chromium.version,
        section="vite-error",
    )
    assert seen.loads == 1
    assert [s for _, p, s in seen.chunk_requests if "settings-" in p] == [404]


def test_webpack_deleted_chunk_is_a_chunk_load_error(
    chromium: Any, builds: dict[str, Releases], error_record: ErrorRecorder
) -> None:
    seen = visit(chromium, builds["webpack"])
    (error,) = seen.results
    first, second = error.splitlines()
    assert first.startswith("ChunkLoadError: Loading chunk ")
    assert first.endswith(" failed.")
    assert second.startswith("(error: http://127.0.0.1:") and second.endswith(".js)")
    assert seen.loads == 1
    error_record(
        error,
        id="webpack-chunk-load-error",
        component="webpack",
        version=bundler_version("webpack"),
        section="webpack-error",
    )


def test_spa_fallback_turns_the_404_into_a_mime_error_for_vite(
    chromium: Any, builds: dict[str, Releases]
) -> None:
    seen = visit(chromium, builds["vite"], spa_fallback=True)
    (error,) = seen.results
    assert error.startswith(VITE_ERROR)
    assert MIME_ERROR in seen.console
    # The host answered 200 with index.html: no 404 anywhere in its log.
    assert {status for _, _, status in seen.chunk_requests} == {200}


def test_spa_fallback_runs_index_html_as_script_for_webpack(
    chromium: Any, builds: dict[str, Releases], error_record: ErrorRecorder
) -> None:
    seen = visit(chromium, builds["webpack"], spa_fallback=True)
    (error,) = seen.results
    assert error.splitlines()[1].startswith("(missing: http://127.0.0.1:")
    assert "SyntaxError: Unexpected token '<'" in seen.console
    error_record(
        "SyntaxError: Unexpected token '<'",
        id="spa-fallback-syntax-error",
        component="Chromium",
        version=chromium.version,
        section="webpack-error",
    )


@pytest.mark.parametrize("bundler", BUNDLERS)
def test_naive_reload_loops_when_the_new_release_is_broken(
    chromium: Any, builds: dict[str, Releases], bundler: str
) -> None:
    seen = visit(
        chromium,
        builds[bundler],
        fix="naive",
        broken_v2=True,
        stop_after_loads=5,
        loop_expected=True,
    )
    assert seen.loads >= 5, f"stopped after {seen.loads} loads"


# --------------------------------------------------------------------------- #
# The fixes hold
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("bundler", BUNDLERS)
def test_grace_period_keeps_the_open_tab_working(
    chromium: Any, builds: dict[str, Releases], bundler: str
) -> None:
    seen = visit(chromium, builds[bundler], grace=timedelta(hours=1))
    assert seen.results == ["ok: release v1"]
    assert seen.loads == 1


@pytest.mark.parametrize("bundler", BUNDLERS)
def test_reload_once_moves_the_tab_to_the_new_release(
    chromium: Any, builds: dict[str, Releases], bundler: str
) -> None:
    seen = visit(chromium, builds[bundler], fix="reload")
    assert seen.results == ["ok: release v2"]
    assert seen.loads == 2
    assert seen.storage == {}, "the guard is cleared once the route rendered"


@pytest.mark.parametrize("bundler", BUNDLERS)
def test_reload_once_stops_after_the_second_failure(
    chromium: Any, builds: dict[str, Releases], bundler: str
) -> None:
    seen = visit(chromium, builds[bundler], fix="reload", broken_v2=True)
    (error,) = seen.results
    assert error.startswith(VITE_ERROR if bundler == "vite" else "ChunkLoadError")
    assert seen.loads == 2  # one reload, then the error, not a loop
    assert list(seen.storage) == ["chunk-load-reloaded"]


@pytest.mark.parametrize("bundler", BUNDLERS)
def test_reload_once_also_reloads_on_a_network_blip(
    chromium: Any, builds: dict[str, Releases], bundler: str
) -> None:
    seen = visit(chromium, builds[bundler], fix="reload", abort_once=True)
    assert seen.results == ["ok: release v1"]
    assert seen.loads == 2  # nothing was deployed, yet the tab lost its state


@pytest.mark.parametrize("bundler", BUNDLERS)
def test_classify_retries_a_network_blip_in_place(
    chromium: Any, builds: dict[str, Releases], bundler: str
) -> None:
    seen = visit(chromium, builds[bundler], fix="classify", abort_once=True)
    assert seen.results == ["ok: release v1"]
    assert seen.loads == 1
    methods = [
        method
        for method, path, _ in seen.chunk_requests
        if path.endswith(tuple(seen.route_chunks))
    ]
    # The aborted GET never reached the host; then HEAD (present), then the retry.
    assert methods == ["HEAD", "GET"]


@pytest.mark.parametrize("bundler", BUNDLERS)
def test_classify_does_not_reload_when_the_host_is_unreachable(
    chromium: Any, builds: dict[str, Releases], bundler: str
) -> None:
    seen = visit(chromium, builds[bundler], fix="classify", unreachable=True)
    (error,) = seen.results
    assert error.startswith(VITE_ERROR if bundler == "vite" else "ChunkLoadError")
    assert seen.loads == 1  # a reload would only swap the app for an error page
    assert seen.storage == {}  # the one reload is kept for a real deploy


@pytest.mark.parametrize("bundler", BUNDLERS)
def test_reload_once_spends_its_reload_when_the_host_is_unreachable(
    chromium: Any, builds: dict[str, Releases], bundler: str
) -> None:
    seen = visit(chromium, builds[bundler], fix="reload", unreachable=True)
    assert len(seen.results) == 1
    assert seen.loads == 2


@pytest.mark.parametrize("bundler", BUNDLERS)
@pytest.mark.parametrize("fallback", [False, True], ids=["404", "index.html"])
def test_classify_reloads_for_a_deleted_chunk(
    chromium: Any, builds: dict[str, Releases], bundler: str, fallback: bool
) -> None:
    seen = visit(chromium, builds[bundler], fix="classify", spa_fallback=fallback)
    assert seen.results == ["ok: release v2"]
    assert seen.loads == 2


# --------------------------------------------------------------------------- #
# publish(): the grace period, without a browser
# --------------------------------------------------------------------------- #


def make_build(root: Path, release: str, chunks: list[str]) -> Path:
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text(f"<!doctype html><p>{release}</p>\n")
    for name in chunks:
        (root / "assets" / name).write_text(f"// {name}\n")
    return root


def test_publish_keeps_the_previous_release_until_the_grace_period_ends(
    tmp_path: Path,
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    v1 = make_build(tmp_path / "v1", "v1", ["index-a.js", "settings-a.js", "x-s.js"])
    v2 = make_build(tmp_path / "v2", "v2", ["index-b.js", "settings-b.js", "x-s.js"])
    v3 = make_build(tmp_path / "v3", "v3", ["index-c.js", "settings-c.js", "x-s.js"])
    grace = timedelta(hours=24)

    first = publish(v1, site, "v1", grace=grace, now=T0)
    second = publish(v2, site, "v2", grace=grace, now=T0 + timedelta(days=1))
    assert (first.copied, second.copied) == (3, 2)  # x-s.js is shared
    assert (second.kept, second.deleted) == (2, 0)
    assert (site / "assets" / "settings-a.js").is_file()
    assert "v2" in (site / "index.html").read_text()

    # v2 has been live for 24 h when v3 goes out: v1's own files go now.
    third = publish(v3, site, "v3", grace=grace, now=T0 + timedelta(days=2))
    assert third.deleted == 2
    assert not (site / "assets" / "settings-a.js").exists()
    assert (site / "assets" / "settings-b.js").is_file()  # v2's tabs: still fine
    assert (site / "assets" / "x-s.js").is_file()  # v3 uses it too
    releases_left = json.loads((site / ".releases.json").read_text())
    assert [entry["release"] for entry in releases_left] == ["v2", "v3"]


def test_publish_without_grace_deletes_the_previous_release_at_once(
    tmp_path: Path,
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    v1 = make_build(tmp_path / "v1", "v1", ["settings-a.js"])
    v2 = make_build(tmp_path / "v2", "v2", ["settings-b.js"])
    publish(v1, site, "v1", grace=timedelta(0), now=T0)
    done = publish(v2, site, "v2", grace=timedelta(0), now=T0 + timedelta(hours=1))
    assert done.deleted == 1
    assert sorted(p.name for p in (site / "assets").iterdir()) == ["settings-b.js"]
