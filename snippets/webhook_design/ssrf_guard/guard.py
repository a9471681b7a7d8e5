"""Check a customer's webhook URL: scheme, host, and every resolved address."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from snippets.webhook_design.ssrf_guard.policy import (
    IPAddress,
    forbidden_reason,
    numeric_host,
)

__all__ = ["BlockedURL", "Resolver", "Target", "UrlGuard", "system_resolver"]

Resolver = Callable[[str, int], Sequence[IPAddress]]
"""Host name and port to every address they resolve to."""


class BlockedURL(ValueError):
    """The URL may not receive webhooks; the message says why."""


def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address ``getaddrinfo`` returns for ``host``, TCP only."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def _shown(host: str, literal: IPAddress | None, address: IPAddress) -> str:
    if literal is None:
        return f"{host} -> {address}"
    if literal.version == 4 and str(literal) != host:
        return f"{host} = {literal}"  # 2130706433 = 127.0.0.1
    return host


@dataclass(frozen=True)
class Target:
    """A checked URL, pinned to the address that was checked."""

    scheme: str
    host: str  # for the Host header and TLS (SNI, certificate check)
    port: int
    path: str  # path and query
    address: IPAddress  # where to connect: checked, never resolved again


# --8<-- [start:guard]
class UrlGuard:
    """Refuses webhook URLs that lead anywhere but the public internet.

    Args:
        resolver: Host and port to addresses; `system_resolver` in production,
            a stub in tests.
        allow_http: Accept ``http://`` as well as ``https://`` (tests only).
        allow: Networks exempt from the policy, such as ``127.0.0.1/32`` for
            a test's loopback server. Empty in production.
    """

    def __init__(
        self,
        resolver: Resolver = system_resolver,
        *,
        allow_http: bool = False,
        allow: Iterable[str] = (),
    ) -> None:
        self.resolver = resolver
        self.schemes = {"https", "http"} if allow_http else {"https"}
        self.allow = [ipaddress.ip_network(net) for net in allow]

    def check(self, url: str) -> Target:
        """Resolve once, check every address, return the URL pinned to one."""
        parts = urlsplit(url)
        if parts.scheme not in self.schemes:
            raise BlockedURL(f"scheme {parts.scheme!r} not allowed")
        if not parts.hostname or parts.username or parts.password:
            raise BlockedURL("a host is required, credentials are not allowed")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        literal = numeric_host(parts.hostname)
        addresses = [literal] if literal else self.resolver(parts.hostname, port)
        if not addresses:
            raise BlockedURL(f"{parts.hostname} has no address")
        for address in addresses:  # every one: the client may try any
            reason = forbidden_reason(address)
            if reason and not any(address in net for net in self.allow):
                shown = _shown(parts.hostname, literal, address)
                raise BlockedURL(f"{shown}: {reason}")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return Target(parts.scheme, parts.hostname, port, path, addresses[0])


# --8<-- [end:guard]
