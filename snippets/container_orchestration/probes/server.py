"""The probe endpoints, on a server of their own: and the naive probes, for contrast."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

from .checks import Answer, Check

__all__ = [
    "NaiveProbes",
    "ProbeServer",
    "Probes",
    "probe_handler",
]

log = logging.getLogger(__name__)


class Probes(Protocol):
    """What `ProbeServer` serves: one method per endpoint."""

    def livez(self) -> Answer: ...

    def readyz(self) -> Answer: ...

    def startupz(self) -> Answer: ...


# --8<-- [start:naive]
class NaiveProbes:
    """The broken version, kept for the tests: every probe calls the dependency.

    Liveness depends on the dependency, so a slow dependency gets every replica
    restarted; and each probe is one more call to a dependency that is
    already struggling.
    """

    def __init__(self, check: Check, timeout: float) -> None:
        self._check, self._timeout = check, timeout

    def _call_dependency(self) -> Answer:
        try:
            self._check(self._timeout)  # runs on the probe's own request
        except Exception as error:
            return 503, f"{type(error).__name__}: {error}"
        return 200, "ok"

    def livez(self) -> Answer:
        return self._call_dependency()  # "alive" only if the database is

    def readyz(self) -> Answer:
        return self._call_dependency()

    def startupz(self) -> Answer:
        return 200, "ok"


# --8<-- [end:naive]


# --8<-- [start:handler]
def probe_handler(
    probes: Probes, request_timeout: float
) -> type[BaseHTTPRequestHandler]:
    """A request handler that answers the three probe paths from `probes`."""
    routes = {
        "/livez": probes.livez,
        "/readyz": probes.readyz,
        "/startupz": probes.startupz,
    }

    class Handler(BaseHTTPRequestHandler):
        timeout = request_timeout  # for reading the request, not for answering

        def do_GET(self) -> None:
            answer = routes.get(self.path.split("?", 1)[0])
            try:
                status, body = answer() if answer else (404, "not found")
            except Exception as error:  # a bug in a probe: a 500, not a hang
                status, body = 500, f"{type(error).__name__}: {error}"
            data = (body + "\n").encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                log.debug("the prober left before the answer: %s", self.path)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("probe %s", format % args)

    return Handler


# --8<-- [end:handler]


# --8<-- [start:server]
class ProbeServer:
    """Serve `/livez`, `/readyz` and `/startupz` from threads of their own.

    Each request gets its own thread, so one slow answer cannot hold the next
    probe, and the application's own request path cannot delay a probe.

    Args:
        probes: The object whose methods answer.
        host: `0.0.0.0` in a container: the kubelet probes the Pod's IP.
        port: 0 picks a free port (see `address`).
        request_timeout: Seconds a client may take to send its request.
    """

    def __init__(
        self,
        probes: Probes,
        host: str = "0.0.0.0",
        port: int = 0,
        request_timeout: float = 5.0,
    ) -> None:
        handler = probe_handler(probes, request_timeout)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},  # how soon close() takes effect
            name="probes",
            daemon=True,
        )

    # --8<-- [end:server]

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the server listens on."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Start answering in a background thread."""
        self._thread.start()

    def close(self) -> None:
        """Stop answering and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
