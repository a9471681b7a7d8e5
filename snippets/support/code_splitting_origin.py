"""A loopback HTTP origin for split parts that counts what it serves.

Shared by the demos and tests of the code-splitting patterns (single-flight
loader, bounded fan-out): it counts requests per path, can fail the next N
requests of a path with 503, caps concurrent requests, and holds every answer
behind a gate so a test can make a race happen on every run.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["ANSWER_TIMEOUT", "PartServer"]

ANSWER_TIMEOUT = 5.0  # seconds an answer waits at the gate at most


class PartServer(ThreadingHTTPServer):
    """A loopback origin for `/parts/<name>` that counts what it serves.

    Args:
        max_active: Answer 503 when more requests than this are in progress
            at once (a server-side concurrency cap); `None` for no cap.
    """

    daemon_threads = True
    request_queue_size = 512  # accept backlog: connections are not refused

    def __init__(self, max_active: int | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _PartHandler)
        self.max_active = max_active
        self.requests: Counter[str] = Counter()  # path -> requests received
        self.fail_next: Counter[str] = Counter()  # path -> 503s still to send
        self.active = self.peak = self.rejected = 0
        self.gate = threading.Event()  # every answer waits for it
        self.gate.set()
        self.changed = threading.Condition()

    @property
    def url(self) -> str:
        """The base URL, for example ``http://127.0.0.1:40123``."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def wait_until(self, ready: Callable[[PartServer], bool], timeout: float) -> None:
        """Block until ``ready(self)`` holds; raise `TimeoutError` after timeout."""
        with self.changed:
            if not self.changed.wait_for(lambda: ready(self), timeout):
                raise TimeoutError("the server never reached the expected state")


class _PartHandler(BaseHTTPRequestHandler):
    server: PartServer

    def do_GET(self) -> None:
        srv = self.server
        with srv.changed:
            srv.requests[self.path] += 1
            srv.active += 1
            srv.peak = max(srv.peak, srv.active)
            over_cap = srv.max_active is not None and srv.active > srv.max_active
            fail = over_cap or srv.fail_next[self.path] > 0
            if over_cap:
                srv.rejected += 1
            elif fail:
                srv.fail_next[self.path] -= 1
            srv.changed.notify_all()
        try:
            srv.gate.wait(timeout=ANSWER_TIMEOUT)  # the tests hold answers here
            if fail:
                self.send_error(HTTPStatus.SERVICE_UNAVAILABLE)
                return
            body = f"part {self.path.rsplit('/', 1)[-1]}".encode()
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        finally:
            with srv.changed:
                srv.active -= 1
                srv.changed.notify_all()

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""
