"""Lazy images and latest-wins loading on visibility, in Chromium.

The gallery is served from loopback by a server that holds photo 1 until the
page is painted; the rows page talks to the hold-the-answer search server of
load-on-visibility (snippets/support/lazy_loading_browser.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from snippets.support import frontend
from snippets.support.lazy_loading_browser import (
    PHOTOS,
    abort_rejections,
    gallery_visit,
    rows_visit,
)
from snippets.support.services import ServiceUnavailable
from tests.conftest import unavailable
from tools.errors import ErrorRecorder

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    try:
        with frontend.browser() as launched:
            yield launched
    except ServiceUnavailable as error:
        unavailable("Chromium", str(error))


# --------------------------------------------------------------------------- #
# See it break
# --------------------------------------------------------------------------- #


def test_lazy_images_without_size_shift_the_page_and_all_load(chromium: Any) -> None:
    seen = gallery_visit(chromium, sized=False)
    assert seen.layout_shift > 0.25  # web.dev: poor
    # 0 x 0 until loaded, all 20 sit inside the viewport: lazy loads them all.
    assert seen.requested_at_load == PHOTOS


def test_every_answer_shown_lets_the_old_one_win(chromium: Any) -> None:
    seen = rows_visit(chromium, "naive", ("con", "co"))
    assert seen.shown == ["con", "co"]
    assert seen.panel.startswith("co: ")  # "con" is on screen, "co" is shown
    assert seen.aborted == []


def test_checking_the_error_name_reports_the_superseded_load(chromium: Any) -> None:
    seen = rows_visit(chromium, "by-name", ("con", "co"))
    assert seen.failed == ["co: Error: superseded"]
    assert seen.panel.startswith("con: ")


# --------------------------------------------------------------------------- #
# The fix
# --------------------------------------------------------------------------- #


def test_width_and_height_reserve_the_space(chromium: Any) -> None:
    seen = gallery_visit(chromium, sized=True)
    assert seen.layout_shift == 0
    assert seen.requested_at_load < PHOTOS // 2  # the rest waits for the scroll
    assert seen.requested_after_scroll == PHOTOS


@pytest.mark.parametrize("order", [("con", "co"), ("co", "con")])
def test_latest_wins_shows_the_newest_row_only(
    chromium: Any, order: tuple[str, str]
) -> None:
    seen = rows_visit(chromium, "latest", order)
    assert seen.shown == ["con"] and seen.failed == []
    assert seen.panel.startswith("con: ")
    # The superseded request was cancelled: the server saw its client leave.
    assert seen.aborted == ["co"] and seen.answered == ["con"]


def test_the_generation_check_holds_when_the_load_cannot_be_aborted(
    chromium: Any,
) -> None:
    seen = rows_visit(chromium, "latest-unabortable", ("con", "co"))
    assert seen.answered == ["con", "co"]  # both answers arrived
    assert seen.shown == ["con"] and seen.failed == []


def test_abort_with_a_reason_rejects_with_the_reason(
    chromium: Any, error_record: ErrorRecorder
) -> None:
    plain, reason, dom = abort_rejections(chromium)
    assert plain.endswith(
        "AbortError: signal is aborted without reason (signal.aborted true)"
    )
    error_record(
        plain.rsplit("-> ", 1)[-1].removesuffix(" (signal.aborted true)"),
        id="aborted-without-reason",
        component="Chromium",
        version=chromium.version,
        section="abort-reason",
    )
    assert reason.endswith("-> Error: superseded (signal.aborted true)")
    assert dom.endswith("-> AbortError: superseded (signal.aborted true)")
