"""The cases the resource-hints page shows, run in Chromium.

``python -m snippets.code_splitting.resource_hints.demo CASE``:

* ``hints``: hints.html with a preload, a modulepreload and a prefetch: the
  priority Chromium gives each request, what ran, what ``import()`` fetched,
  and the console warning for the preload nobody used;
* ``race``: a 200 kB critical script on a throttled link, alone, with a
  prefetch in ``<head>`` and with a prefetch added after the load event;
* ``vite``, ``webpack``: the test bed built by the bundler, loaded, then its
  lazy route opened, then the route's chart: the requests of each step and
  the link tags the bundler's runtime added.

Priorities are named as the Network panel names them; ports and content
hashes are replaced by ``PORT`` and ``HASH``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from snippets.support import frontend
from snippets.support.cases import run_cases
from snippets.support.code_splitting_resource_hints import (
    APP,
    RACES,
    Request,
    bundler_visit,
    hints_visit,
    race,
)

HINT_ORDER = ["preloaded.js", "module.js", "app.js", "next-page.js"]
HINT_OF = {
    "preloaded.js": '<link rel="preload" as="script">',
    "module.js": '<link rel="modulepreload">',
    "app.js": '<script type="module">',
    "next-page.js": '<link rel="prefetch">',
}


def show_hints() -> list[str]:
    with frontend.browser() as browser:
        seen = hints_visit(browser)
    by_name = {r.name: r for r in seen.requests["load"]}
    lines = [f"{'file':14} {'requested by':34} priority"]
    for name in HINT_ORDER:
        lines.append(f"{name:14} {HINT_OF[name]:34} {by_name[name].shown_priority}")
    lines.append("ran after load:    " + ", ".join(seen.ran["load"]))
    fetched = ", ".join(r.name for r in seen.requests["import"]) or "nothing"
    lines.append(f"import('./module.js') fetched: {fetched}")
    lines.append("ran after import:  " + ", ".join(seen.ran["import"]))
    lines.append(
        "GET requests: "
        + ", ".join(
            f"{name} {seen.gets[name]}" for name in [*HINT_ORDER, "module-dep.js"]
        )
    )
    lines += [f"console {text}" for text in seen.console]
    return lines


def _overlap(critical: Request, prefetch: Request | None) -> str:
    if prefetch is None:
        return "-"
    assert critical.end is not None
    return "while critical.js loaded" if prefetch.start < critical.end else "after it"


def show_race() -> list[str]:
    lines = [
        "throttled to 200 kB/s and 100 ms; critical.js 200 kB, next.js 400 kB",
        f"{'page':20} {'critical.js':12} {'next.js':8} next.js started",
    ]
    with frontend.browser() as browser:
        for case in RACES:
            requests = {r.name: r for r in race(browser, case)}
            critical, prefetch = requests["critical.js"], requests.get("next.js")
            shown = prefetch.shown_priority if prefetch else "-"
            lines.append(
                f"{case:20} {critical.shown_priority:12} {shown:8} "
                + _overlap(critical, prefetch)
            )
    return lines


def show_bundler(bundler: str) -> list[str]:
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="resource-hints-") as folder:
        build = frontend.build(bundler, APP, Path(folder) / bundler, "v1")
        with frontend.browser() as browser:
            seen = bundler_visit(browser, build)
    before: list[str] = []
    for phase, requests in seen.requests.items():
        lines.append(f"after {phase}")
        for request in requests:
            name = frontend.normalise(request.name or "index.html")
            cache = "  from the cache" if request.cached else ""
            lines.append(f"  GET {name:18} {request.shown_priority:7}{cache}".rstrip())
        if not requests:
            lines.append("  (no request)")
        lines += [f"  added {link}" for link in seen.links[phase] if link not in before]
        before = seen.links[phase]
        lines.append("  ran: " + (", ".join(seen.ran[phase]) or "-"))
    return [frontend.normalise(line) for line in lines]


if __name__ == "__main__":
    sys.exit(
        run_cases(
            {
                "hints": show_hints,
                "race": show_race,
                "vite": lambda: show_bundler("vite"),
                "webpack": lambda: show_bundler("webpack"),
            }
        )
    )
