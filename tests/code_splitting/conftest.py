"""Fixtures of the code-splitting tests: the browser, and the part origin.

``web_bed`` installs the front-end test bed (snippets/web/) with ``npm ci``
from the committed lockfile, once per run; ``chromium`` is Debian's Chromium
under Playwright (tools/browser.py). Without Node.js, npm or Chromium the test
skips with the install command, and fails under ``CI=true``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from snippets.support import frontend
from snippets.support.code_splitting_origin import PartServer
from snippets.support.services import ServiceUnavailable
from tests.conftest import unavailable


@pytest.fixture(scope="session")
def web_bed() -> Path:
    try:
        return frontend.install()
    except ServiceUnavailable as error:
        unavailable("Node.js and npm", str(error))
        raise


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Module-scoped: Playwright's sync API keeps an event loop while open."""
    try:
        with frontend.browser() as launched:
            yield launched
    except ServiceUnavailable as error:
        unavailable("Chromium", str(error))


@contextmanager
def running_part_server(**options: Any) -> Iterator[PartServer]:
    """A loopback part origin serving in a thread; its gate opened at the end."""
    with PartServer(**options) as srv:
        thread = threading.Thread(target=srv.serve_forever, daemon=True)
        thread.start()
        try:
            yield srv
        finally:
            srv.gate.set()
            srv.shutdown()
            thread.join(timeout=10.0)
