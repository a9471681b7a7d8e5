"""A threaded HTTP server that stops intake and drains within a deadline."""

from __future__ import annotations

import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .signals import InFlight, Log, Work, say, stop_requests

__all__ = [
    "DrainingHTTPServer",
    "WorkHandler",
    "serve_naive",
    "serve_threaded",
    "stop_and_drain",
]


# --8<-- [start:server]
class DrainingHTTPServer(ThreadingHTTPServer):
    """A `ThreadingHTTPServer` that counts the requests its threads are serving.

    Args:
        address: ``(host, port)`` to listen on; port 0 picks a free port.
        handler: The request handler class, usually `WorkHandler`.
        work: What a request does; called with the request path.
    """

    daemon_threads = True  # a request abandoned at the deadline must not block exit
    block_on_close = False  # `stop_and_drain` waits, with a deadline, instead

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        work: Work,
    ) -> None:
        super().__init__(address, handler)
        self.in_flight = InFlight()
        self.work = work

    def process_request(self, request: Any, client_address: Any) -> None:
        self.in_flight.enter()  # counted in the accept loop, before its thread runs
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.in_flight.leave()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.in_flight.leave()


# --8<-- [end:server]


class WorkHandler(BaseHTTPRequestHandler):
    """``GET /<anything>``: run the server's ``work`` for the path, return its text.

    A failing dependency (any `OSError` from ``work``) becomes a ``502``.
    """

    server: DrainingHTTPServer

    def do_GET(self) -> None:
        try:
            status, body = 200, self.server.work(self.path)
        except OSError as error:
            status, body = 502, f"dependency failed: {error}\n"
        self.reply(status, body)

    def reply(self, status: int, body: str) -> None:
        """Send a plain-text response with a Content-Length."""
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the per-request access log off stderr; send it to your logger."""


# --8<-- [start:naive]
def serve_naive(server: DrainingHTTPServer, log: Log = say) -> int:
    """The broken version, kept for the tests: no SIGTERM handler at all.

    SIGTERM's default action ends the process at once, with every request that
    is in flight; as PID 1 in a container the same signal is ignored instead.
    """
    log(f"listening on port {server.server_port}, pid {os.getpid()}")
    server.serve_forever()
    return 0


# --8<-- [end:naive]


# --8<-- [start:threaded]
def serve_threaded(server: DrainingHTTPServer, grace: float, log: Log = say) -> int:
    """Serve until SIGTERM or SIGINT, then stop intake and drain within `grace`.

    Call it from the main thread, which only waits for the signal: the accept
    loop and the requests run in other threads.

    Returns:
        The exit status: 0 when every accepted request finished, 1 when the
        deadline came first.
    """
    stop = stop_requests(signal.SIGTERM, signal.SIGINT)  # before anyone can connect
    accept = threading.Thread(target=server.serve_forever, args=(0.05,), name="accept")
    accept.start()
    log(f"listening on port {server.server_port}, pid {os.getpid()}")
    signum = stop.get()  # the main thread sleeps here until a signal arrives
    return stop_and_drain(server, grace, signal.Signals(signum).name, log)


def stop_and_drain(
    server: DrainingHTTPServer, grace: float, reason: str, log: Log = say
) -> int:
    """Stop accepting, wait up to `grace` seconds for requests; return the status."""
    deadline = time.monotonic() + grace
    server.shutdown()  # 1. stop intake: the accept loop returns ...
    server.socket.close()  # ... and new connections are refused
    log(f"{reason}: stopped accepting, draining {server.in_flight.count} in flight")
    drained = server.in_flight.wait_idle(deadline - time.monotonic())  # 2. drain
    if drained:
        log("drained, exiting")
        return 0
    log(f"deadline: abandoning {server.in_flight.count} in flight")
    return 1  # 3. exit; abandoned daemon threads end with the process


# --8<-- [end:threaded]
