"""The version-skew scenario: a static host, a release, and a deploy under load.

``PartHost`` serves a directory on loopback and counts requests per path; its
optional gate holds every 404 until that many clients wait, so concurrent
failures happen together. ``run`` starts a loader on release v1, deploys v2
and lets N threads load a part; the demo and the tests share it.
"""

from __future__ import annotations

import json
import threading
import types
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Protocol

from snippets.code_splitting.version_skew.fetch import MissingPart
from snippets.code_splitting.version_skew.releases import deploy

__all__ = ["Loader", "Outcome", "PartHost", "release", "run"]


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 drops a burst of clients for 1 s


class PartHost:
    """A static file host on loopback that counts requests per path.

    ``gate`` (optional) holds every 404 answer until that many are waiting,
    so concurrent clients fail at the same moment.
    """

    def __init__(self, root: Path, gate: threading.Barrier | None = None) -> None:
        self.root = root
        self.hits: Counter[str] = Counter()
        self._gate = gate
        self._lock = threading.Lock()
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host._serve(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}
        )

    @property
    def url(self) -> str:
        """The base URL, such as ``http://127.0.0.1:40123``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        path = request.path.lstrip("/")
        with self._lock:
            self.hits[path] += 1
        file = self.root / path
        if ".." in path or not file.is_file():
            if self._gate is not None:
                try:
                    self._gate.wait(timeout=5)
                except threading.BrokenBarrierError:
                    pass
            request.send_error(404)
            return
        body = file.read_bytes()
        request.send_response(200)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    def __enter__(self) -> PartHost:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def release(text: str) -> dict[str, bytes]:
    """The parts of a small demo release: ``report.render()`` returns ``text``."""
    return {
        "report": f"def render() -> str:\n    return {text!r}\n".encode(),
        "settings": b"THEME = 'light'\n",
    }


class Loader(Protocol):
    """Anything with ``load(name)``."""

    def load(self, name: str) -> types.ModuleType:
        """Load a part by name."""
        ...


@dataclass(frozen=True)
class Outcome:
    """What the clients got, and the manifest fetches after they started."""

    results: Counter[str]
    manifest_fetches: int

    def __str__(self) -> str:
        seen = ", ".join(f"{k!r} x{v}" for k, v in sorted(self.results.items()))
        return f"{seen}; manifest fetches: {self.manifest_fetches}"


def run(
    root: Path,
    make_loader: Callable[[str], Loader],
    *,
    v2_broken: bool = False,
    keep_previous: int = 0,
    clients: int = 8,
) -> Outcome:
    """Start a loader on release v1, deploy v2, then load a part from N threads.

    ``v2_broken`` deletes v2's ``report`` part too, like a failed upload.
    Returns the outcomes and how often the manifest was fetched after v1.
    """
    deploy(root, "v1", release("report v1"), keep_previous)
    gate = threading.Barrier(clients) if keep_previous == 0 else None
    with PartHost(root, gate) as host:
        loader = make_loader(host.url)
        deploy(root, "v2", release("report v2"), keep_previous)
        if v2_broken:
            (
                root
                / json.loads((root / "manifest.json").read_bytes())["parts"]["report"]
            ).unlink()
        before = host.hits["manifest.json"]
        outcomes: Counter[str] = Counter()
        lock = threading.Lock()

        def client() -> None:
            try:
                outcome = str(loader.load("report").render())
            except MissingPart:
                outcome = "MissingPart"
            with lock:
                outcomes[outcome] += 1

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        reloads = host.hits["manifest.json"] - before
    return Outcome(outcomes, reloads)
