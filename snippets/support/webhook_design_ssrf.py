"""Harness for the SSRF-guard demo and tests: nothing leaves loopback.

* `StubResolver` answers host names from a table, one answer per call in
  turn (the last one repeats), and counts the calls.
* `RecordingConnector` is a connector for `send_webhook` that records the
  address it was asked to reach and refuses to connect.
* `loopback_only` patches ``socket.socket.connect`` for its duration: a
  connection to anything outside 127.0.0.0/8 and ::1 raises instead.
* `stub_getaddrinfo` puts a `StubResolver` behind ``socket.getaddrinfo``, so
  that ``urlopen`` sees its answers (the rebinding demo).
* `Recorder` serves HTTP on 127.0.0.1 and records each request; it can
  answer with a redirect.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from unittest import mock

from snippets.webhook_design.ssrf_guard import IPAddress, Target

__all__ = [
    "PUBLIC",
    "OutboundRefused",
    "Recorder",
    "RecordingConnector",
    "StubResolver",
    "loopback_only",
    "stub_getaddrinfo",
]

PUBLIC = "93.184.215.14"  # a global address; nothing here connects to it


class StubResolver:
    """Host -> a list of answers; call n gets answer n (the last repeats)."""

    def __init__(self, answers: Mapping[str, Sequence[Sequence[str]]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    def __call__(self, host: str, port: int) -> list[IPAddress]:
        turn = sum(1 for h in self.calls if h == host)
        self.calls.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        options = self.answers[host]
        return [ipaddress.ip_address(a) for a in options[min(turn, len(options) - 1)]]


class OutboundRefused(ConnectionRefusedError):
    """A test tried to reach an address outside loopback, or a recorder refused."""


class _RecordedConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float, seen: list[Target]) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self.target, self.seen = target, seen

    def connect(self) -> None:
        self.seen.append(self.target)
        raise OutboundRefused(f"recorded {self.target.address}, not connected")


class RecordingConnector:
    """A `Connector` that records each target and never connects."""

    def __init__(self) -> None:
        self.targets: list[Target] = []

    def __call__(self, target: Target, timeout: float) -> http.client.HTTPConnection:
        return _RecordedConnection(target, timeout, self.targets)


def _is_loopback(address: Any) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False  # a name: refuse, it would need a lookup first


@contextmanager
def loopback_only() -> Iterator[list[str]]:
    """Refuse every socket connection outside loopback; yield the refused."""
    refused: list[str] = []
    real_connect = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(
            address
        ):
            refused.append(str(address[0]))
            raise OutboundRefused(f"refused to connect to {address[0]}")
        real_connect(sock, address)

    with mock.patch.object(socket.socket, "connect", connect):
        yield refused


@contextmanager
def stub_getaddrinfo(resolver: StubResolver) -> Iterator[None]:
    """Let ``socket.getaddrinfo`` answer from ``resolver`` for its hosts."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in resolver.answers:
            return real(host, port, *args, **kwargs)
        return [
            (
                socket.AF_INET6 if a.version == 6 else socket.AF_INET,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                "",
                (str(a), int(port)),
            )
            for a in resolver(str(host), int(port))
        ]

    with mock.patch.object(socket, "getaddrinfo", getaddrinfo):
        yield


class Recorder(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 that records requests; optional redirect."""

    daemon_threads = True

    def __init__(self, redirect_to: str | None = None) -> None:
        self.requests: list[str] = []
        self.redirect_to = redirect_to
        super().__init__(("127.0.0.1", 0), _RecorderHandler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @contextmanager
    def running(self) -> Iterator[Recorder]:
        thread = threading.Thread(target=self.serve_forever, args=(0.05,))
        thread.start()
        try:
            yield self
        finally:
            self.shutdown()
            self.server_close()
            thread.join(timeout=5)


class _RecorderHandler(BaseHTTPRequestHandler):
    server: Recorder

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.rfile.read(length)
        self.server.requests.append(f"POST {self.headers['Host']}{self.path}")
        if self.server.redirect_to:
            self.send_response(307)
            self.send_header("Location", self.server.redirect_to)
        else:
            self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass
