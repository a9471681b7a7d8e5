"""The cases the caching-split-assets page shows, built and run in Chromium.

``python -m snippets.code_splitting.caching_split_assets.demo CASE`` builds the
page's app (``app/``) with the real Vite and webpack, serves it on 127.0.0.1
with a ``Cache-Control`` policy, an ``ETag`` and ``304`` answers
(snippets/support/code_splitting_caching.py), and visits it twice in one
Chromium profile. Ports and content hashes are replaced by ``PORT`` and ``HASH``.

* ``headers``: the response headers Chromium received with the page's policy;
* ``visits``: per policy, what the host answered on the first and second
  visit, and what the second visit took from Chromium's cache;
* ``deploy``: a deploy between two visits, HTML cached for an hour or not;
* ``renames-vite``, ``renames-webpack``, ``renames-runtime``: which files a
  one-line change renames, per bundler setting (a change in one route, in the
  module both routes import, one more lazy route).
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

from snippets.code_splitting.caching_split_assets import IMMUTABLE, cache_control
from snippets.support import frontend
from snippets.support.cases import run_cases
from snippets.support.code_splitting_caching import (
    Fetched,
    Policy,
    build_app,
    scripts,
    serve_cached,
    visit,
    webpack_options,
)

HTML = "/index.html"
ETAG = re.compile(r'"[0-9a-f]{16}"')


def html_for_an_hour(path: str) -> str:
    return "max-age=3600" if path == HTML else cache_control(path)


# label of the HTML's header, label of the hashed files' header, policy
POLICIES: list[tuple[str, str, Policy]] = [
    ("no-cache", "immutable, 1 year", cache_control),
    (
        "no-cache",
        "max-age=31536000",
        lambda p: "max-age=31536000" if p != HTML else "no-cache",
    ),
    ("no-cache", "no-cache", lambda path: "no-cache"),
    ("(none)", "(none)", lambda path: ""),
    ("max-age=3600", "immutable, 1 year", html_for_an_hour),
]


def tally(seen: Fetched) -> str:
    counts = Counter(seen.sources.values())
    return ", ".join(f"{n} {source}" for source, n in sorted(counts.items()))


def show_headers() -> list[str]:
    with tempfile.TemporaryDirectory(prefix="caching-") as folder:
        app = build_app("vite", Path(folder) / "vite")
        with frontend.browser() as browser, serve_cached(app, cache_control) as host:
            context = browser.new_context()
            seen = visit(context, host)
            context.close()
    lines = []
    for path, headers in sorted(seen.headers.items()):
        lines.append(f"GET {path}")
        lines += [f"  {name}: {headers[name]}" for name in ("cache-control", "etag")]
    return [ETAG.sub('"ETAG"', frontend.normalise(line)) for line in lines]


def show_visits() -> list[str]:
    lines = [
        f"{'index.html':13} {'hashed files':18} {'visit 1':9} {'visit 2':20} reload"
    ]
    with tempfile.TemporaryDirectory(prefix="caching-") as folder:
        app = build_app("vite", Path(folder) / "vite")
        with frontend.browser() as browser:
            for html, assets, policy in POLICIES:
                with serve_cached(app, policy) as host:
                    context = browser.new_context()
                    first, second = visit(context, host), visit(context, host)
                    again = visit(context, host, reload=True)
                    context.close()
                lines.append(
                    f"{html:13} {assets:18} {tally(first):9} {tally(second):20} "
                    f"{tally(again)}"
                )
    lines += [
        "visit 2: a new tab, same profile; reload: a tab reloaded (then the route)",
        "200, 304: the host's answers; disk/memory cache: no request (CDP)",
        "files: index.html, entry, route, shared chunk",
        f"immutable, 1 year: {IMMUTABLE}",
    ]
    return lines


def deploy(build: Path, site: Path) -> None:
    """Replace the site's files with the build's: the old release is deleted."""
    shutil.rmtree(site)
    shutil.copytree(build, site)


def show_deploy() -> list[str]:
    lines = [
        "visit 1 opens #/report on v1; v2 is deployed (v1's files deleted);",
        "visit 2, in the same profile, opens #/settings",
    ]
    with tempfile.TemporaryDirectory(prefix="caching-") as folder:
        root = Path(folder)
        v1 = build_app("vite", root / "v1", release="v1")
        v2 = build_app("vite", root / "v2", release="v2")
        with frontend.browser() as browser:
            for label, policy in (
                ("index.html max-age=3600", html_for_an_hour),
                ("index.html no-cache", cache_control),
            ):
                site = root / "site"
                shutil.copytree(v1, site)
                with serve_cached(site, policy) as host:
                    context = browser.new_context()
                    visit(context, host)
                    deploy(v2, site)
                    second = visit(context, host, "#/settings")
                    context.close()
                shutil.rmtree(site)
                lines.append(f"{label}:")
                lines += [
                    f"  {frontend.normalise(path):26} {src}"
                    for path, src in second.sources.items()
                ]
                lines.append(f"  #/settings: {second.result}")
    return [frontend.normalise(line) for line in lines]


# label, bundler, name of the optimization object in optimization.js
SETTINGS = [
    ("Vite 8.4.1 (Rolldown)", "vite", ""),
    ("webpack, natural ids", "webpack", "natural"),
    ("webpack, deterministic ids", "webpack", "deterministic"),
    ("webpack, deterministic + runtime", "webpack", "runtimeSingle"),
]
CHANGES = ["route", "shared", "new route"]


def role(name: str) -> str:
    """A file's part in the app, from its name or its content."""
    for part in ("runtime", "main", "index", "report", "settings", "format"):
        if Path(name).name.startswith(part):
            return {"main": "entry", "index": "entry", "format": "shared"}.get(
                part, part
            )
    return "?"


def show_renames(settings: list[tuple[str, str, str]]) -> list[str]:
    """One demo case per few settings: each builds 4 times (a base, 3 changes)."""
    options = webpack_options()
    lines = [
        f"{'build':33} {'files':5} {'route':14} {'shared':14} new route",
    ]
    renamed_by: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="renames-") as folder:
        root = Path(folder)
        for label, bundler, name in settings:
            optimization = options.get(name, {})
            base = build_app(
                bundler, root / f"{bundler}-{name}", optimization=optimization
            )
            before = scripts(base)
            row = f"{label:33} {len(before):<5}"
            for kind in CHANGES:
                into = root / f"{bundler}-{name}-{kind.replace(' ', '-')}"
                after = scripts(
                    build_app(bundler, into, optimization=optimization, kind=kind)
                )
                gone = sorted(before - after)
                row += f" {f'{len(gone)} of {len(before)}':14}"
                renamed_by[f"{label}, {kind}"] = ", ".join(_describe(base, gone))
            lines.append(row.rstrip())
    lines.append("N of M: files of the first build that the change renamed")
    lines += [f"{key}: {value or '-'}" for key, value in renamed_by.items()]
    return lines


def _describe(build: Path, names: list[str]) -> list[str]:
    described = []
    for name in names:
        text = (build / name).read_text()
        kind = role(name)
        if kind == "?":  # webpack names chunks by id: look inside
            kind = next(
                (r for r in ("report", "settings") if f'"{r}"' in text),
                "shared" if "release ${release}" in text else "?",
            )
        described.append(kind)
    return sorted(described)


if __name__ == "__main__":
    sys.exit(
        run_cases(
            {
                "headers": show_headers,
                "visits": show_visits,
                "deploy": show_deploy,
                "renames-vite": lambda: show_renames(SETTINGS[:1]),
                "renames-webpack": lambda: show_renames(SETTINGS[1:3]),
                "renames-runtime": lambda: show_renames(SETTINGS[3:]),
            }
        )
    )
