"""The front-end test bed: npm, real bundlers, a static host and Chromium.

``snippets/web/`` holds the test bed: ``package.json`` and the committed
``package-lock.json`` (Vite, webpack, webpack-cli, ESLint), the bundler configs
and the apps the pages build. This module

* installs it with ``npm ci`` once (a stamp beside ``node_modules`` records the
  lockfile's hash; a file lock keeps two runs from installing at once);
* builds an app with the real bundler into a folder of the caller's;
* serves a folder on 127.0.0.1 the way a static host does: a real 404 for a
  missing file, or (``spa_fallback``) ``index.html`` with status 200 for any
  missing path, as single-page-app hosts are often configured;
* starts Debian's Chromium with tools/browser.py.

Without Node.js, npm or Chromium it raises :class:`ServiceUnavailable`, whose
message says how to install them (a demo then exits 77, a test skips locally
and fails under ``CI=true``).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import http.server
import importlib.util
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from snippets.support.http_servers import serving
from snippets.support.services import ServiceUnavailable

if TYPE_CHECKING:
    from playwright.sync_api import Browser

__all__ = [
    "BUNDLERS",
    "INSTALL_NODE",
    "WEB",
    "Host",
    "browser",
    "build",
    "eslint",
    "install",
    "normalise",
    "serve",
]

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "snippets" / "web"
INSTALL_NODE = "apt-get install -y nodejs npm"
BUNDLERS = ("vite", "webpack")
MIN_NODE = (20, 19)  # vite 8.4.1 and eslint 10.16.0: "engines" in package-lock.json


def _require_node() -> None:
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise ServiceUnavailable(
                f"{tool} is not on PATH: install Node.js with `{INSTALL_NODE}`"
            )


def _require_node_version() -> None:
    version = _run(["node", "--version"]).strip().lstrip("v")
    found = tuple(int(part) for part in version.split(".")[:2])
    if found < MIN_NODE:
        wanted = ".".join(map(str, MIN_NODE))
        raise ServiceUnavailable(
            f"Node.js {version} is older than {wanted}, which Vite 8 and ESLint 10 "
            f"need: install a newer Node.js (`{INSTALL_NODE}` where Debian's is new "
            "enough)"
        )


def _run(
    command: list[str], *, env: dict[str, str] | None = None, cwd: Path = WEB
) -> str:
    run = subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if run.returncode != 0:
        raise RuntimeError(
            f"`{' '.join(command)}` exited {run.returncode}:\n{run.stdout}{run.stderr}"
        )
    return run.stdout


@functools.cache
def install() -> Path:
    """``npm ci`` from the committed lockfile, unless node_modules matches it."""
    _require_node()
    _require_node_version()
    lock = (WEB / "package-lock.json").read_bytes()
    digest = hashlib.sha256(lock).hexdigest()
    modules = WEB / "node_modules"
    stamp = modules / ".installed-from-lock"
    with (WEB / ".npm-ci.lock").open("w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # two Pythons of the matrix at once
        if not (stamp.is_file() and stamp.read_text() == digest):
            _run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"])
            stamp.write_text(digest)
    return modules


def build(
    bundler: str,
    app: str,
    out_dir: Path,
    release: str,
    *,
    env: dict[str, str] | None = None,
) -> Path:
    """Build ``snippets/web/<app>`` with Vite or webpack into ``out_dir``.

    ``app`` may be an absolute path (a page's own app in its package); ``env``
    adds environment variables the configs read (``WEBPACK_OPTIMIZATION``).
    """
    if bundler not in BUNDLERS:
        raise ValueError(f"bundler must be one of {BUNDLERS}, not {bundler!r}")
    bin_dir = install() / ".bin"
    command = [str(bin_dir / "vite"), "build"] if bundler == "vite" else []
    command = command or [str(bin_dir / "webpack"), "--config", "webpack.config.js"]
    env = {**(env or {}), "APP": app, "OUT_DIR": str(out_dir), "RELEASE": release}
    # One build of the test bed at a time across processes: Vite 8 refuses to
    # start while another Vite build of the same project runs ("Found another
    # Vite build process for this project"), and the matrix builds from three
    # Pythons at once.
    with (WEB / ".build.lock").open("w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        _run(command, env=env)
    return out_dir


def eslint() -> str:
    """Run the pinned ESLint over the test bed and every page's JavaScript."""
    modules = install()
    config = WEB / "eslint.config.js"
    command = [str(modules / ".bin" / "eslint"), "-c", str(config)]
    return _run([*command, "--max-warnings=0", "snippets"], cwd=ROOT)


# --------------------------------------------------------------------------- #
# A static host on loopback
# --------------------------------------------------------------------------- #

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
}


@dataclass
class Host:
    """A served folder: its URL (ends with /), and each request it answered."""

    url: str
    root: Path
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def log(self, method: str, path: str, status: int) -> None:
        with self.lock:
            self.requests.append((method, path, status))

    def answered(self, suffix: str) -> list[tuple[str, str, int]]:
        """The requests whose path ends with ``suffix``, in order."""
        with self.lock:
            return [entry for entry in self.requests if entry[1].endswith(suffix)]


class _StaticHandler(http.server.BaseHTTPRequestHandler):
    host: Host
    spa_fallback: bool

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, *, body: bool) -> None:
        route = unquote(urlsplit(self.path).path)
        path = (self.host.root / route.lstrip("/")).resolve()
        if route.endswith("/"):
            path = path / "index.html"
        inside = path.is_relative_to(self.host.root.resolve())
        if not (inside and path.is_file()) and self.spa_fallback:
            path = self.host.root / "index.html"  # what SPA hosts often do
        if inside and path.is_file():
            status, data = 200, path.read_bytes()
            kind = TYPES.get(path.suffix, "application/octet-stream")
        else:
            status, data, kind = 404, b"Not Found\n", "text/plain; charset=utf-8"
        # Logged before the answer goes out, so that a test that has seen the
        # browser get it also finds it in the log.
        self.host.log(self.command, route, status)
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        html = kind.startswith("text/html")
        cache = "no-cache" if html or status != 200 else "max-age=31536000, immutable"
        self.send_header("Cache-Control", cache)
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


@contextlib.contextmanager
def serve(root: Path, *, spa_fallback: bool = False) -> Iterator[Host]:
    """Serve ``root`` on a free port of 127.0.0.1 until the block ends."""
    host = Host(url="", root=root)
    handler = type(
        "StaticHandler", (_StaticHandler,), {"host": host, "spa_fallback": spa_fallback}
    )
    server = _Server(("127.0.0.1", 0), handler)
    host.url = f"http://127.0.0.1:{server.server_address[1]}/"
    with serving(server):
        yield host


@contextlib.contextmanager
def browser() -> Iterator[Browser]:
    """Debian's Chromium under Playwright (tools/browser.py), or unavailable."""
    from tools import browser as chromium

    if importlib.util.find_spec("playwright") is None:
        raise ServiceUnavailable(
            "Playwright is not installed in this Python: install the pinned "
            "version with `pip install --require-hashes --no-deps -r "
            "requirements/test.lock` (tests/python_matrix.py adds it to its venvs)"
        )
    try:
        chromium.require()
    except chromium.NoChromium as error:
        raise ServiceUnavailable(str(error)) from None
    with chromium.chromium() as launched:
        yield launched


# --------------------------------------------------------------------------- #
# Output that does not change from run to run
# --------------------------------------------------------------------------- #

_PORT = re.compile(r"127\.0\.0\.1:\d+")
_VITE_HASH = re.compile(r"-[A-Za-z0-9_-]{8}\.(js|css)\b")
_WEBPACK_HASH = re.compile(r"\.[0-9a-f]{8}\.(js|css)\b")


def normalise(text: str) -> str:
    """Replace the port and the content hashes, which change with every build."""
    text = _PORT.sub("127.0.0.1:PORT", text)
    text = _VITE_HASH.sub(r"-HASH.\1", text)
    return _WEBPACK_HASH.sub(r".HASH.\1", text)
