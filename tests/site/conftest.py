"""Fixtures for the site checks: the built site, served on loopback, and Chromium.

The site is built once per test run: ``make test`` builds site/ before pytest
starts, and every test process reuses it while no input has changed
(tools/build.py ``current_site``; a file lock keeps parallel test processes
from building it twice). The loopback server is tools/loopback.py, the
browser tools/browser.py: the same code the benchmarks and the PDF use.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, unavailable
from tools import browser as chromium
from tools.build import current_site
from tools.loopback import Server, serve

__all__ = ["Server", "serve"]


_SITE: list[tuple[Path, str]] = []


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build (or find fresh) the site before the first test that needs it runs.

    Here, not in the fixture, so that a build on a busy machine does not count
    against the first test's timeout.
    """
    if any(
        "built_site_and_url" in getattr(item, "fixturenames", ())
        for item in session.items
    ):
        _SITE.append(current_site())


@pytest.fixture(scope="session")
def built_site_and_url() -> tuple[Path, str]:
    return _SITE[0] if _SITE else current_site()


@pytest.fixture(scope="session")
def built_site(built_site_and_url: tuple[Path, str]) -> Path:
    """The whole site, built strictly once per test run (site/)."""
    return built_site_and_url[0]


@pytest.fixture(scope="session")
def site_url(built_site_and_url: tuple[Path, str]) -> str:
    """The address the built site is published at (its ``site_url``)."""
    return built_site_and_url[1]


@pytest.fixture
def docs_copy(tmp_path: Path) -> Path:
    """A copy of docs/ that a test may break."""
    copy = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", copy)
    return copy


@pytest.fixture(scope="session")
def site_server(built_site: Path, site_url: str) -> Iterator[Server]:
    """The site of this run over HTTP on loopback, at its URL's path."""
    with serve(built_site, site_url) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (tools/browser.py).

    Module-scoped: Playwright's sync API keeps an event loop running while it
    is open, and tests elsewhere call ``asyncio.run``.
    """
    try:
        chromium.require()
    except chromium.NoChromium as error:
        unavailable(f"Chromium at {chromium.CHROMIUM}", str(error))
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright, chromium.launch(playwright) as launched:
        yield launched
