"""A loopback HTTP dependency that answers, fails or hangs on demand, and a clock.

`DependencyServer` plays a service the bulkhead and circuit-breaker demos and
tests call; `ManualClock` moves only when told to, so cool-downs are
deterministic; `wait_until` is a bounded poll.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, cast

__all__ = ["HANG_LIMIT", "DependencyServer", "ManualClock", "Mode", "wait_until"]

Mode = Literal["up", "down", "hang"]
HANG_LIMIT = 30.0  # a held request answers by itself after this many seconds


class _Server(ThreadingHTTPServer):
    request_queue_size = 64  # socketserver's default backlog is 5
    dependency: DependencyServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up closed its socket: nothing to report


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        dependency = cast(_Server, self.server).dependency
        mode = dependency.arrive()
        if self.path != "/":
            self._reply(404, b"no such resource")
            return
        if mode == "hang":
            dependency.held_until_release(HANG_LIMIT)
        if mode == "down":
            after = dependency.retry_after
            headers = {"Retry-After": str(after)} if after is not None else {}
            self._reply(503, b"unavailable", headers)
        else:
            self._reply(200, dependency.name.encode())

    def _reply(
        self, status: int, body: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        try:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except ConnectionError:
            pass  # the client timed out and left

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep demo and test output clean


class DependencyServer:
    """An HTTP dependency on loopback that answers, fails or hangs on demand.

    Modes: `up` answers 200 at once; `down` answers 503 (with `Retry-After`
    when `retry_after` is set); `hang` holds each request until `release()`
    and then answers 200. `hits` counts every request that reaches it.
    """

    def __init__(self, name: str, mode: Mode = "up", retry_after: int | None = None):
        self.name = name
        self.mode: Mode = mode
        self.retry_after = retry_after
        self.hits = 0
        self._arrived = threading.Condition()
        self._released = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.dependency = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"dependency-{name}",
            daemon=True,
        )

    @property
    def url(self) -> str:
        """The base URL, `http://127.0.0.1:<port>/`."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/"

    def arrive(self) -> Mode:
        """Count a request and return the mode it is served in."""
        with self._arrived:
            self.hits += 1
            self._arrived.notify_all()
            return self.mode

    def wait_for_hits(self, count: int, timeout: float) -> int:
        """Wait until `count` requests have arrived (bounded); return `hits`."""
        with self._arrived:
            self._arrived.wait_for(lambda: self.hits >= count, timeout)
            return self.hits

    def held_until_release(self, timeout: float) -> None:
        """Block a request handler until `release()`, at most `timeout` s."""
        self._released.wait(timeout)

    def release(self) -> None:
        """Answer every held request, and every later one in `hang` mode."""
        self._released.set()

    def __enter__(self) -> DependencyServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class ManualClock:
    """A clock that moves only when told to: deterministic cool-downs."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll `predicate` every 5 ms until it holds or `timeout` passes."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= end:
            return False
    while not predicate():
        if time.monotonic() >= end:
            return False
        time.sleep(0.005)
    return True
