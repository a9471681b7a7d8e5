"""Fixtures for the site checks: a strict build, a loopback server, Chromium."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, unavailable

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# The address the test builds are published at. A root path, so that the 404
# page's absolute links work on the loopback server as they do on the real host.
SITE_URL = "https://guide.example/"
# Flags that keep Chromium from calling home; without them it tries Google's
# hosts at start-up and those attempts would be counted as foreign requests.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def build_site(
    site_dir: Path,
    docs_dir: Path | None = None,
    nav_moves: dict[str, str] | None = None,
    redirects: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``mkdocs build --strict`` with the project's config.

    ``docs_dir`` swaps in another docs folder (a copy with a broken page, say);
    every other setting is the project's own. ``nav_moves`` renames pages in
    the navigation; ``redirects`` replaces overrides/redirects.yml.
    """
    config = (ROOT / "mkdocs.yml").read_text()
    config = re.sub(r"(?m)^docs_dir: .*$", f"docs_dir: {docs_dir or ROOT / 'docs'}", config)
    config = re.sub(r"(?m)^site_dir: .*$", f"site_dir: {site_dir}", config)
    config = config.replace("custom_dir: overrides", f"custom_dir: {ROOT / 'overrides'}")
    config = config.replace("  - overrides/hooks/", f"  - {ROOT / 'overrides' / 'hooks'}/")
    for old, new in (nav_moves or {}).items():
        config = config.replace(f" {old}\n", f" {new}\n")
    config_file = site_dir.parent / f"{site_dir.name}-mkdocs.yml"
    config_file.write_text(config)
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "SITE_URL": SITE_URL}
    if redirects is not None:
        env["CP_REDIRECTS"] = str(redirects)
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config_file)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole site, built strictly once per test session."""
    site = tmp_path_factory.mktemp("built") / "site"
    result = build_site(site)
    assert result.returncode == 0, f"strict build failed:\n{result.stderr}"
    return site


@pytest.fixture
def docs_copy(tmp_path: Path) -> Path:
    """A copy of docs/ that a test may break."""
    copy = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", copy)
    return copy


class _SiteHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the built site; a missing page gets 404.html, as on GitHub Pages."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        page = Path(self.directory) / "404.html"
        if code != 404 or not page.exists():
            super().send_error(code, message, explain)
            return
        body = page.read_bytes()
        self.send_response(404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _SiteServer(http.server.ThreadingHTTPServer):
    request_queue_size = 64  # a page load opens many connections at once


@dataclass(frozen=True)
class Server:
    url: str
    host: str
    root: Path


@contextlib.contextmanager
def serve(site: Path) -> Iterator[Server]:
    """A built site over HTTP on a free loopback port."""
    handler = functools.partial(_SiteHandler, directory=str(site))
    server = _SiteServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host = f"127.0.0.1:{server.server_address[1]}"
    try:
        yield Server(url=f"http://{host}/", host=host, root=site)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def site_server(built_site: Path) -> Iterator[Server]:
    """The site of this session over HTTP on loopback."""
    with serve(built_site) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright; never a downloaded browser.

    Module-scoped: Playwright's sync API keeps an event loop running while it
    is open, and tests elsewhere call ``asyncio.run``.
    """
    if not Path(CHROMIUM).exists():
        unavailable(f"Chromium at {CHROMIUM}", "install it with `apt-get install -y chromium`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()
