"""Preload, modulepreload and prefetch in Chromium, read through DevTools.

hints.html is served from snippets/code_splitting/resource_hints/; the test
bed's app snippets/web/resource-hints is built once per module with the real
Vite and webpack from the committed lockfile. Requests, priorities and times
come from the DevTools protocol (snippets/support/code_splitting_resource_hints.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from snippets.support import frontend
from snippets.support.code_splitting_resource_hints import (
    APP,
    Request,
    bundler_visit,
    hints_visit,
    race,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

UNUSED_PRELOAD = (
    "warning: The resource http://127.0.0.1:PORT/preloaded.js was preloaded "
    "using link preload but not used within a few seconds from the window's "
    "load event. Please make sure it has an appropriate `as` value and it is "
    "preloaded intentionally."
)


@pytest.fixture(scope="module")
def builds(web_bed: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("resource-hints-builds")
    return {
        bundler: frontend.build(bundler, APP, folder / bundler, "v1")
        for bundler in frontend.BUNDLERS
    }


@pytest.fixture(scope="module")
def hints(chromium: Any) -> Iterator[Any]:
    yield hints_visit(chromium)


def _duration(request: Request) -> float:
    assert request.end is not None, request
    return request.end - request.start


# --------------------------------------------------------------------------- #
# See it break: an unused preload, a prefetch that competes
# --------------------------------------------------------------------------- #


def test_an_unused_preload_is_fetched_and_warned_about(hints: Any) -> None:
    assert hints.gets["preloaded.js"] == 1
    assert "preloaded.js" not in hints.ran["import"]  # fetched, never run
    assert hints.console == [UNUSED_PRELOAD]


def test_a_prefetch_in_head_slows_the_critical_script(chromium: Any) -> None:
    alone = {r.name: r for r in race(chromium, "alone")}
    racing = {r.name: r for r in race(chromium, "prefetch in head")}
    assert racing["next.js"].priority == "VeryLow"
    assert racing["next.js"].start < racing["critical.js"].end  # type: ignore[operator]
    # Throttled to 200 kB/s, the two share the link: about 1.1 s against 2.1 s.
    assert _duration(racing["critical.js"]) > 1.5 * _duration(alone["critical.js"])


# --------------------------------------------------------------------------- #
# What each hint does
# --------------------------------------------------------------------------- #


def test_priorities_of_the_hints(hints: Any) -> None:
    priority = {r.name: r.priority for r in hints.requests["load"]}
    assert priority["preloaded.js"] == "High"
    assert priority["module.js"] == "High"
    assert priority["next-page.js"] == "VeryLow"
    assert priority["hints.html"] == "VeryHigh"


def test_modulepreload_fetches_but_does_not_run(hints: Any) -> None:
    assert hints.ran["load"] == ["app.js"]
    # import() runs the preloaded module without fetching it again; its
    # dependency, which modulepreload did not fetch, is fetched now.
    assert [r.name for r in hints.requests["import"]] == ["module-dep.js"]
    assert hints.gets["module.js"] == 1
    assert hints.ran["import"][-1] == "module.js (module-dep.js)"


def test_a_used_preload_runs_once_and_draws_no_warning(chromium: Any) -> None:
    seen = hints_visit(chromium, use_preload=True)
    assert seen.gets["preloaded.js"] == 1
    assert "preloaded.js" in seen.ran["import"]
    assert seen.console == []


def test_a_prefetch_after_load_leaves_the_critical_script_alone(chromium: Any) -> None:
    alone = {r.name: r for r in race(chromium, "alone")}
    later = {r.name: r for r in race(chromium, "prefetch after load")}
    assert later["next.js"].start >= later["critical.js"].end  # type: ignore[operator]
    assert _duration(later["critical.js"]) < 1.3 * _duration(alone["critical.js"])


# --------------------------------------------------------------------------- #
# The bundlers
# --------------------------------------------------------------------------- #


def test_vite_preloads_the_route_and_its_imports_in_parallel(
    chromium: Any, builds: dict[str, Path]
) -> None:
    entry = next((builds["vite"] / "assets").glob("index-*.js")).read_text()
    assert "__vitePreload(() => import(" in entry
    assert 'm.f=["assets/settings-' in entry  # the deps table, __vite__mapDeps
    seen = bundler_visit(chromium, builds["vite"])
    opened = [frontend.normalise(r.name) for r in seen.requests["open()"]]
    assert sorted(opened) == ["settings-HASH.js", "shared-HASH.js"]
    assert all(
        link.startswith('<link rel="modulepreload"') for link in seen.links["open()"]
    )
    assert seen.requests["load"][-1].priority == "High"
    assert seen.ran["chart()"] == ["chart.js"]


def test_webpack_prefetches_after_the_entry_and_preloads_with_the_parent(
    chromium: Any, builds: dict[str, Path]
) -> None:
    seen = bundler_visit(chromium, builds["webpack"])
    (prefetch,) = seen.links["load"]
    assert prefetch.startswith('<link rel="prefetch" as="script"')
    route = seen.requests["load"][-1]
    assert route.priority == "VeryLow" and prefetch.endswith(f'/{route.name}">')
    # open(): the route comes from the cache, the chart is preloaded alongside.
    again, chart = seen.requests["open()"]
    assert again.name == route.name and again.cached
    assert chart.priority == "High" and not chart.cached
    assert any('rel="preload"' in link for link in seen.links["open()"])
    assert seen.ran["open()"] == []  # preloaded, not run
    assert seen.requests["chart()"] == [] and seen.ran["chart()"] == ["chart.js"]
    assert seen.gets[route.name] == 1 and seen.gets[chart.name] == 1
