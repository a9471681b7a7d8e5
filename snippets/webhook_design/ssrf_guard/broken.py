"""The URL checks that let a webhook reach internal addresses anyway."""

from __future__ import annotations

import ipaddress
import socket
import urllib.request
from collections.abc import Mapping
from urllib.parse import urlsplit

__all__ = ["check_literal", "naive_send"]


# --8<-- [start:literal]
def check_literal(url: str) -> None:
    """Refuse URLs whose host is a private IP address. Not enough."""
    host = urlsplit(url).hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return  # "a name, not an address": 2130706433 and 0x7f.1 get through
    if address.is_private or address.is_loopback or address.is_link_local:
        raise ValueError(f"{host} is not allowed")


# --8<-- [end:literal]


# --8<-- [start:naive]
def naive_send(url: str, body: bytes, headers: Mapping[str, str]) -> int:
    """Resolve, check, then let urllib connect. Two lookups, one check."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        if not ipaddress.ip_address(info[4][0]).is_global:
            raise ValueError(f"{host} resolves to {info[4][0]}")
    # urlopen resolves the name again, and follows redirects on its own.
    request = urllib.request.Request(url, body, dict(headers), method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        return int(response.status)


# --8<-- [end:naive]
