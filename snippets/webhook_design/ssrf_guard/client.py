"""Send a webhook to a checked URL: connect to the checked address only."""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urljoin

from snippets.webhook_design.ssrf_guard.guard import Target, UrlGuard

__all__ = [
    "REDIRECTS",
    "Connector",
    "PinnedHTTPConnection",
    "PinnedHTTPSConnection",
    "Sent",
    "connect_pinned",
    "send_webhook",
]


# --8<-- [start:pinned]
class PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to ``target.address``; the host name goes only into ``Host``."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self.pinned = target.address

    def connect(self) -> None:
        # No second lookup: a DNS answer that changed since the check
        # (rebinding) cannot move the connection.
        self.sock = socket.create_connection(
            (str(self.pinned), self.port), self.timeout
        )


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to ``target.address``, with SNI and certificate for the host."""

    def __init__(self, target: Target, timeout: float) -> None:
        context = ssl.create_default_context()
        super().__init__(target.host, target.port, timeout=timeout, context=context)
        self.pinned, self.tls = target.address, context

    def connect(self) -> None:
        raw = socket.create_connection((str(self.pinned), self.port), self.timeout)
        self.sock = self.tls.wrap_socket(raw, server_hostname=self.host)


Connector = Callable[[Target, float], http.client.HTTPConnection]


def connect_pinned(target: Target, timeout: float) -> http.client.HTTPConnection:
    """The production connector: a pinned connection for the target's scheme."""
    if target.scheme == "https":
        return PinnedHTTPSConnection(target, timeout)
    return PinnedHTTPConnection(target, timeout)


# --8<-- [end:pinned]


@dataclass
class Sent:
    """What one webhook send did: the final status and every hop's URL."""

    status: int
    hops: list[str] = field(default_factory=list)


# --8<-- [start:send]
REDIRECTS = {307, 308}  # the ones that keep the POST and its body


def send_webhook(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    guard: UrlGuard,
    *,
    connect: Connector = connect_pinned,
    max_redirects: int = 0,
    timeout: float = 10.0,
) -> Sent:
    """POST ``body`` to ``url``; each hop is checked before it is connected.

    ``max_redirects=0`` (the default) returns a redirect as the final status,
    which a sender counts as a failed delivery. Above 0, every ``Location``
    goes through ``guard.check`` again, as if the customer had typed it.
    """
    sent = Sent(0)
    while True:
        target = guard.check(url)  # raises BlockedURL
        sent.hops.append(url)
        conn = connect(target, timeout)
        try:
            conn.request("POST", target.path, body, dict(headers))
            response = conn.getresponse()
            response.read(65536)  # the answer is not ours to keep
            sent.status = response.status
            location = response.getheader("Location")
        finally:
            conn.close()
        if sent.status not in REDIRECTS or location is None:
            return sent
        if len(sent.hops) > max_redirects:
            return sent
        url = urljoin(url, location)


# --8<-- [end:send]
