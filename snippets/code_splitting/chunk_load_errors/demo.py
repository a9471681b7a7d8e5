"""The cases the chunk-load-errors page shows, built and run in Chromium.

``python -m snippets.code_splitting.chunk_load_errors.demo CASE`` builds
release v1 and v2 of ``snippets/web/chunk-load`` with the real bundler, serves
them on 127.0.0.1, opens v1 in Debian's Chromium, deploys v2 and follows the
link to the lazily loaded route. Ports and content hashes are replaced by
``PORT`` and ``HASH``.

* ``vite``, ``webpack``: the errors Chromium reports when v1's chunk is gone,
  from a host that answers 404 and from one that falls back to index.html;
* ``fixes``: each fix, by bundler: document loads (1 + reloads), GET requests
  for the route's chunk that reached the host, and what the route showed.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from snippets.support import frontend
from snippets.support.cases import run_cases
from snippets.support.code_splitting_chunk_load import (
    Releases,
    Visit,
    releases,
    visit,
)

# (label, deploy, keyword arguments of visit())
FIXES: list[tuple[str, str, dict[str, Any]]] = [
    ("no handler", "v1 deleted", {}),
    ("grace period 1 h", "v1 kept", {"grace": timedelta(hours=1)}),
    ("naive reload", "v1 deleted", {"fix": "naive", "min_loads": 2}),
    (
        "naive reload",
        "v2 broken",
        {"fix": "naive", "broken_v2": True, "loop_expected": True},
    ),
    ("reload once", "v1 deleted", {"fix": "reload"}),
    ("reload once", "v2 broken", {"fix": "reload", "broken_v2": True}),
    ("reload once", "reset once", {"fix": "reload", "abort_once": True}),
    ("reload once", "unreachable", {"fix": "reload", "unreachable": True}),
    ("classify", "v1 deleted", {"fix": "classify"}),
    ("classify", "index.html", {"fix": "classify", "spa_fallback": True}),
    ("classify", "reset once", {"fix": "classify", "abort_once": True}),
    ("classify", "unreachable", {"fix": "classify", "unreachable": True}),
]
STOP_AFTER_LOADS = 6


@contextmanager
def built(*bundlers: str) -> Iterator[dict[str, Releases]]:
    with tempfile.TemporaryDirectory(prefix="chunk-load-builds-") as folder:
        yield {name: releases(name, Path(folder)) for name in bundlers}


def result(seen: Visit) -> str:
    """The last result the app showed, its first line, without the URL."""
    if not seen.results:
        return "(no result: still reloading)"
    last = seen.results[-1].splitlines()[0]
    return last.split(": http")[0]


def show_errors(bundler: str) -> list[str]:
    lines = [
        f"{bundler}: v1 open in Chromium, v2 deployed, v1's chunks deleted, "
        "link to #/settings"
    ]
    with built(bundler) as builds, frontend.browser() as browser:
        for fallback, host in (
            (False, "answers a missing .js with 404 Not Found"),
            (True, "falls back to index.html (200, text/html)"),
        ):
            seen = visit(browser, builds[bundler], spa_fallback=fallback)
            lines.append(f"host {host}:")
            lines += [
                "  import() rejected: " + text.replace("\n", "\n    ")
                for text in seen.results
            ]
            lines += [f"  console: {text}" for text in seen.console]
    return [frontend.normalise(line) for line in lines]


def show_fixes() -> list[str]:
    header = f"{'bundler':8} {'fix':17} {'after deploy':13} loads  chunk GETs  result"
    lines = [header]
    with built(*frontend.BUNDLERS) as builds, frontend.browser() as browser:
        for bundler in frontend.BUNDLERS:
            for label, deploy, options in FIXES:
                seen = visit(
                    browser,
                    builds[bundler],
                    stop_after_loads=STOP_AFTER_LOADS,
                    **options,
                )
                gets = str(
                    sum(
                        1
                        for method, path, _ in seen.chunk_requests
                        if method == "GET" and Path(path).name in seen.route_chunks
                    )
                )
                loads = str(seen.loads)
                if seen.loads >= STOP_AFTER_LOADS:  # a loop: stopped, counts vary
                    loads, gets = f">={STOP_AFTER_LOADS}", "-"
                shown = result(seen) if loads[0] != ">" else "(reloading in a loop)"
                lines.append(
                    f"{bundler:8} {label:17} {deploy:13} {loads:6} {gets:<11} {shown}"
                )
    return lines


if __name__ == "__main__":
    sys.exit(
        run_cases(
            {
                "vite": lambda: show_errors("vite"),
                "webpack": lambda: show_errors("webpack"),
                "fixes": show_fixes,
            }
        )
    )
