"""The cases the retry-dynamic-import page shows, run in Chromium.

``python -m snippets.code_splitting.retry_dynamic_import.demo CASE`` serves the
page's site on 127.0.0.1 from a host that fails the first requests for a
module (snippets/support/code_splitting_flaky.py), opens it in Debian's
Chromium and counts the requests that reach the host. Ports and hashes are
replaced by ``PORT`` and ``HASH``.

* ``module-map``: what a second ``import()`` of the same URL does after a
  failure, per kind of failure, in plain ES modules;
* ``webpack``: the same for a webpack chunk;
* ``retry``: a loader that keeps the rejection, against the bounded retry;
* ``duplicate``: a cache-busting URL of a module with state.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from snippets.support import frontend
from snippets.support.cases import run_cases
from snippets.support.code_splitting_flaky import (
    PACKAGE,
    ROUTE,
    STORE,
    build_webpack_app,
    open_bed,
    serve_flaky,
)

# label, the host's answers to the first requests for the module
FAILURES = [
    ("503 once", ["503"]),
    ("404 once", ["404"]),
    ("reset once", ["reset"]),
    ("reset twice", ["reset", "reset"]),
    ("bad JavaScript once", ["garbage"]),
]


def short(result: str) -> str:
    return result.split(":")[0]


def show_module_map() -> list[str]:
    lines = [
        f"{'the host answers':20} {'import()':12} GETs  {'again':12} GETs  "
        f"{'?retry=1':12} GETs"
    ]
    errors: set[str] = set()
    with frontend.browser() as browser, serve_flaky(PACKAGE) as host:
        url = host.url + ROUTE.lstrip("/")
        for label, answers in FAILURES:
            page = open_bed(browser, host.url + "site/")
            host.reset()
            host.fail(ROUTE, answers)
            row = f"{label:20}"
            for target in (url, url, url + "?retry=1"):
                result = page.evaluate("url => bed.importOnce(url)", target)
                if not result.startswith("ok"):
                    errors.add(result)
                row += f" {short(result):12} {host.requests(ROUTE):<5}"
            lines.append(row.rstrip())
            page.context.close()
    lines.append("GETs: requests for route.js the host received so far")
    lines += [f"rejected with: {error}" for error in sorted(errors)]
    return [frontend.normalise(line) for line in lines]


def show_webpack() -> list[str]:
    lines = [f"{'the host answers':20} {'import()':16} GETs  {'again':16} GETs"]
    errors: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="retry-import-") as folder:
        app, chunk = build_webpack_app(Path(folder) / "webpack")
        with frontend.browser() as browser, serve_flaky(app) as host:
            for label, answers in FAILURES:
                page = open_bed(browser, host.url)
                host.reset()
                host.fail(chunk, answers)
                row = f"{label:20}"
                for _ in range(2):
                    result = page.evaluate("() => bed.importOnce()")
                    if not result.startswith("ok"):
                        errors.add(result)
                    row += f" {short(result):16} {host.requests(chunk):<5}"
                lines.append(row.rstrip())
                page.context.close()
    lines.append("GETs: requests for the route's chunk the host received so far")
    lines += [f"rejected with: {error}" for error in sorted(errors)]
    return lines


# label, bed function, failures before the host serves the module, calls
LOADERS = [
    ("lazyOnce (kept rejection)", "memoised", 1, 3),
    ("retryImport, 4 attempts", "retry", 1, 1),
    ("retryImport, 4 attempts", "retry", 3, 1),
    ("retryImport, 4 attempts", "retry", 5, 1),
    ("lazyRetrying", "retrying", 5, 2),
]


def show_retry() -> list[str]:
    lines = [
        f"{'loader':26} {'failures':8} {'calls':5} {'results':31} GETs  waits (ms)"
    ]
    with frontend.browser() as browser, serve_flaky(PACKAGE) as host:
        url = host.url + ROUTE.lstrip("/")
        for label, kind, failures, calls in LOADERS:
            page = open_bed(browser, host.url + "site/")
            host.reset()
            host.fail(ROUTE, ["503"] * failures)
            waits: list[int] = []
            if kind == "memoised":
                results = page.evaluate(f"u => bed.memoised(u, {calls})", url)
            elif kind == "retry":
                seen = page.evaluate("u => bed.retry(u)", url)
                results, waits = [seen["result"]], seen["waits"]
            else:
                seen = page.evaluate(f"u => bed.retrying(u, {calls})", url)
                results, waits = seen["results"], seen["waits"]
            shown = ", ".join(short(result) for result in results)
            gets = host.requests(ROUTE)
            lines.append(
                f"{label:26} {failures:<8} {calls:<5} {shown:31} {gets:<5} "
                f"{' '.join(map(str, waits)) or '-'}"
            )
            page.context.close()
    lines.append("failures: 503 answers before the host serves route.js")
    return lines


def show_duplicate() -> list[str]:
    with frontend.browser() as browser, serve_flaky(PACKAGE) as host:
        page = open_bed(browser, host.url + "site/")
        seen = page.evaluate("u => bed.duplicate(u)", host.url + STORE.lstrip("/"))
        page.context.close()
        gets = sorted(host.counts.items())
    first, again, busted = seen["counts"]
    return [
        "import(store.js), import(store.js), import(store.js?retry=1), bump() on each",
        f"store.js twice, same module object:    {seen['sameAgain']}",
        f"store.js?retry=1, same module object:  {seen['sameBusted']}",
        f"bump() returned:                       {first}, {again}, {busted}",
        *[f"GET {path:30} {n}" for path, n in gets if path.startswith("/site/chunks")],
    ]


if __name__ == "__main__":
    sys.exit(
        run_cases(
            {
                "module-map": show_module_map,
                "webpack": show_webpack,
                "retry": show_retry,
                "duplicate": show_duplicate,
            }
        )
    )
