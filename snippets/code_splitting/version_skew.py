"""Version-skew-safe loading of content-hashed parts.

A deploy publishes parts under names derived from their content
(``parts/<sha256>.py``) and a small manifest that maps part names to those
files. A client that started on manifest N keeps using it; when deploy N+1
deletes N's parts, the client's next on-demand load fails. The fix has two
halves: the deploy keeps the previous releases' parts for a grace period, and
the client reloads the manifest at most once per stale version, shared by all
concurrent failures, then fails loudly.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import types
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Protocol

__all__ = [
    "Manifest",
    "MissingPart",
    "NaiveLoader",
    "Outcome",
    "PartHost",
    "PinnedLoader",
    "SkewSafeLoader",
    "deploy",
    "fetch_manifest",
    "fetch_part",
    "run",
]


class MissingPart(Exception):
    """A part named by the manifest is not on the server (HTTP 404).

    The Python counterpart of a browser's ``ChunkLoadError``.
    """


# --8<-- [start:deploy]
def deploy(
    root: Path, version: str, parts: Mapping[str, bytes], keep_previous: int
) -> None:
    """Publish a release and prune parts no recent release still needs.

    Args:
        root: The directory the static host serves.
        version: A unique release name, such as a commit id.
        parts: Part name to source bytes.
        keep_previous: How many earlier releases keep their parts (the grace
            period). ``0`` deletes every part the new release does not use.
    """
    (root / "parts").mkdir(parents=True, exist_ok=True)
    (root / "releases").mkdir(exist_ok=True)
    files = {}
    for name, body in sorted(parts.items()):
        path = f"parts/{hashlib.sha256(body).hexdigest()}.py"
        if not (root / path).exists():  # same name, same content: leave it alone
            tmp = root / f"{path}.{os.getpid()}.tmp"
            tmp.write_bytes(body)
            os.replace(tmp, root / path)  # a download in progress keeps its file
        files[name] = path
    manifest = json.dumps({"version": version, "parts": files}).encode()
    (root / "releases" / f"{version}.json").write_bytes(manifest)
    tmp = root / "manifest.json.tmp"
    tmp.write_bytes(manifest)
    os.replace(tmp, root / "manifest.json")  # readers see old or new, never half
    history = root / "releases.txt"
    with history.open("a") as log:
        log.write(version + "\n")
    live = history.read_text().split()[-(keep_previous + 1) :]
    needed = set()
    for release in live:
        data = json.loads((root / "releases" / f"{release}.json").read_bytes())
        needed.update(data["parts"].values())
    for part in (root / "parts").iterdir():
        if f"parts/{part.name}" not in needed:
            part.unlink()


# --8<-- [end:deploy]


@dataclass(frozen=True)
class Manifest:
    """One release: its version and where each part lives."""

    version: str
    parts: Mapping[str, str]


# --8<-- [start:fetch]
def fetch_manifest(base_url: str, timeout: float = 5.0) -> Manifest:
    """Download the current manifest (never cached: it names the release)."""
    request = urllib.request.Request(
        f"{base_url}/manifest.json", headers={"Cache-Control": "no-cache"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        data = json.loads(response.read())
    return Manifest(version=data["version"], parts=data["parts"])


def fetch_part(
    base_url: str, manifest: Manifest, name: str, timeout: float = 5.0
) -> types.ModuleType:
    """Download one part of ``manifest``, check its hash and import it.

    The hash proves integrity (the bytes are the ones the manifest names), not
    authenticity: the manifest comes from the same host, so whoever can change
    the host's files or the plain-HTTP traffic can change both.

    Raises:
        MissingPart: The release does not name the part, or the server no
            longer has the file.
    """
    path = manifest.parts.get(name)
    if path is None:
        raise MissingPart(f"{name!r} is not in release {manifest.version}")
    try:
        with urllib.request.urlopen(f"{base_url}/{path}", timeout=timeout) as r:
            body: bytes = r.read()
    except urllib.error.HTTPError as error:
        if error.code in (404, 410):
            raise MissingPart(f"{path} of {manifest.version} is gone") from error
        raise
    if f"parts/{hashlib.sha256(body).hexdigest()}.py" != path:
        raise ValueError(f"{path}: content does not match its hash")
    module = types.ModuleType(f"part_{name}")
    exec(compile(body, path, "exec"), module.__dict__)
    return module


# --8<-- [end:fetch]


# --8<-- [start:naive]
class NaiveLoader:
    """Reloads the manifest on every error and tries again: a reload storm."""

    def __init__(self, base_url: str, max_attempts: int = 20) -> None:
        self._base_url = base_url
        self._manifest = fetch_manifest(base_url)
        self._max_attempts = max_attempts  # "forever", bounded for the demo

    def load(self, name: str) -> types.ModuleType:
        """Load a part, reloading the manifest after each failure."""
        for _ in range(self._max_attempts):
            try:
                return fetch_part(self._base_url, self._manifest, name)
            except MissingPart:
                self._manifest = fetch_manifest(self._base_url)
        raise MissingPart(f"{name!r}: gave up after {self._max_attempts} tries")


# --8<-- [end:naive]


# --8<-- [start:loader]
class SkewSafeLoader:
    """Loads parts of one release; survives a deploy with one manifest reload.

    A missing part triggers at most one manifest reload per stale version in
    each ``cooldown`` window. Concurrent failures share that reload: the first
    caller fetches, the others wait on the lock and retry with its manifest.
    """

    def __init__(
        self,
        base_url: str,
        timeout: float = 5.0,
        cooldown: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base_url = base_url
        self._timeout = timeout
        self._cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._manifest = fetch_manifest(base_url, timeout)
        self._reloaded: dict[str, float] = {}  # stale version -> reload time

    @property
    def version(self) -> str:
        """The release this loader currently loads from."""
        return self._manifest.version

    def load(self, name: str) -> types.ModuleType:
        """Load a part; on a missing part reload once, retry once, or raise."""
        manifest = self._manifest
        try:
            return fetch_part(self._base_url, manifest, name, self._timeout)
        except MissingPart:
            if not self._refresh(stale=manifest.version):
                raise
        return fetch_part(self._base_url, self._manifest, name, self._timeout)

    def _refresh(self, stale: str) -> bool:
        with self._lock:
            if self._manifest.version != stale:
                return True  # another caller already moved on: just retry
            last = self._reloaded.get(stale)
            if last is not None and self._clock() - last < self._cooldown:
                return False  # reloaded from this version recently: fail loudly
            self._reloaded[stale] = self._clock()
            self._manifest = fetch_manifest(self._base_url, self._timeout)
            return self._manifest.version != stale


# --8<-- [end:loader]


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


class PinnedLoader:
    """Loads every part from the manifest it started with, like an open tab."""

    def __init__(self, base_url: str) -> None:
        self._base_url = base_url
        self._manifest = fetch_manifest(base_url)

    def load(self, name: str) -> types.ModuleType:
        """Load a part of the first release, or raise ``MissingPart``."""
        return fetch_part(self._base_url, self._manifest, name)


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


# --8<-- [start:demo]
def demo(workdir: Path) -> list[str]:
    """Every scenario of the page, one line each."""
    cases: list[tuple[str, Callable[[str], Loader], bool, int]] = [
        ("pinned to v1", PinnedLoader, False, 0),
        ("reload on every error", NaiveLoader, False, 0),
        ("reload on every error, v2 broken", NaiveLoader, True, 0),
        ("reload once", SkewSafeLoader, False, 0),
        ("reload once, v2 broken", SkewSafeLoader, True, 0),
        ("grace period, keep 1 release", PinnedLoader, False, 1),
    ]
    lines = []
    for index, (label, make, broken, keep) in enumerate(cases):
        outcome = run(workdir / str(index), make, v2_broken=broken, keep_previous=keep)
        lines.append(f"{label}: {outcome}")
    return lines


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(*demo(Path(tmp)), sep="\n")
# --8<-- [end:demo]
