"""The one way Chromium is started: the site tests, the PDF and the benchmarks.

Debian's Chromium (``/usr/bin/chromium``, or ``$CHROMIUM``), never a browser
that Playwright downloads. The flags keep it from calling home: without them
it contacts Google's hosts at start-up, and the tests would count those
requests as the site's. Each launch gets a fresh, empty profile: Playwright
makes one per launch, and :func:`command_line` takes one for tools that start
Chromium themselves.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class NoChromium(RuntimeError):
    """Chromium is not installed where it is looked for."""


def require() -> Path:
    """The Chromium executable; :class:`NoChromium` says how to install it."""
    if not CHROMIUM.exists():
        raise NoChromium(
            f"no Chromium at {CHROMIUM}: install it with `apt-get install -y chromium`"
        )
    return CHROMIUM


def command_line(profile: Path) -> list[str]:
    """Chromium's flags for a tool that starts it itself (Lighthouse, say)."""
    return [*FLAGS, f"--user-data-dir={profile}"]


@contextlib.contextmanager
def launch(playwright: Playwright) -> Iterator[Browser]:
    """Chromium under Playwright, closed on exit.

    Playwright gives every launch a new temporary profile (``--user-data-dir``)
    and removes it afterwards, so no state carries over between launches.
    """
    executable = require()
    # Playwright adds --headless (and the profile) itself.
    args = [flag for flag in FLAGS if not flag.startswith("--headless")]
    browser = playwright.chromium.launch(
        executable_path=executable, headless=True, args=args
    )
    try:
        yield browser
    finally:
        browser.close()


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Start Playwright and Chromium; for code that runs no Playwright yet."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright, launch(playwright) as browser:
        yield browser


# --------------------------------------------------------------------------- #
# Scripts for pages under test or measurement
# --------------------------------------------------------------------------- #

# Material draws diagrams into a closed shadow root. Opening it (an init
# script) lets a test look at the SVG; it changes nothing else on the page.
OPEN_SHADOW_ROOTS = """
const attach = Element.prototype.attachShadow;
Element.prototype.attachShadow = function (init) {
  return attach.call(this, { ...init, mode: "open" });
};
"""

# Every diagram of the page is drawn as SVG (needs OPEN_SHADOW_ROOTS).
ALL_DIAGRAMS_RENDERED = """() => {
  const hosts = [...document.querySelectorAll('.mermaid')];
  return hosts.every(d => d.tagName === 'DIV' && d.shadowRoot
                          && d.shadowRoot.querySelector('svg'));
}"""
