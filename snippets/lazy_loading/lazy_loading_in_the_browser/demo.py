"""The cases the lazy-loading-in-the-browser page shows, run in Chromium.

``python -m snippets.lazy_loading.lazy_loading_in_the_browser.demo CASE``:

* ``images``: the 20-photo gallery with ``loading="lazy"``, without and with
  ``width``/``height``: photos requested before and after scrolling, and the
  cumulative layout shift when photo 1 arrives after the first paint;
* ``rows``: the rows page against the hold-the-answer search server: row "co"
  is visible, the user scrolls to "con", the server answers "con" first and
  "co" second, for each loader;
* ``abort-reason``: what a fetch rejects with after ``abort()`` and
  ``abort(reason)``.
"""

from __future__ import annotations

import sys

from snippets.support import frontend
from snippets.support.cases import run_cases
from snippets.support.lazy_loading_browser import (
    PHOTOS,
    abort_rejections,
    gallery_visit,
    rows_visit,
)

LOADERS = {
    "naive": "showEveryAnswer",
    "by-name": "abortAndCheckName",
    "latest": "latestWins",
    "latest-unabortable": "latestWins, load ignores the signal",
}


def _cls(value: float) -> str:
    """web.dev's bands: good up to 0.1, poor above 0.25 (runs vary inside one)."""
    if value == 0:
        return "0"
    return (
        "<= 0.1 (good)"
        if value <= 0.1
        else ("> 0.25 (poor)" if value > 0.25 else "0.1-0.25")
    )


def show_images() -> list[str]:
    lines = [
        f'{PHOTOS} photos, loading="lazy", viewport 800x600, photo 1 held until the '
        "page is painted",
        f"{'<img> has':20} {'requested at load':18} {'after scrolling':16} "
        "layout shift",
    ]
    with frontend.browser() as browser:
        for sized, label in ((False, "no width/height"), (True, "width and height")):
            seen = gallery_visit(browser, sized=sized)
            lines.append(
                f"{label:20} {seen.requested_at_load:<18} "
                f"{seen.requested_after_scroll:<16} {_cls(seen.layout_shift)}"
            )
    return lines


def show_rows() -> list[str]:
    lines = [
        'row "co" visible, scroll to "con"; the server answers "con", then "co"',
        f"{'loader':36} {'panel':6} {'failures reported':22} server aborted",
    ]
    with frontend.browser() as browser:
        for loader, function in LOADERS.items():
            seen = rows_visit(browser, loader, ("con", "co"))
            panel = seen.panel.split(":")[0]
            failed = "; ".join(seen.failed) or "none"
            aborted = ", ".join(seen.aborted) or "none"
            lines.append(f"{function:36} {panel:6} {failed:22} {aborted}")
    return lines


def show_abort_reason() -> list[str]:
    with frontend.browser() as browser:
        return abort_rejections(browser)


if __name__ == "__main__":
    sys.exit(
        run_cases(
            {
                "images": show_images,
                "rows": show_rows,
                "abort-reason": show_abort_reason,
            }
        )
    )
