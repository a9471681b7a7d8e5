"""Which addresses a webhook may be sent to: global unicast, nothing else."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

__all__ = [
    "EXTRA_BLOCKED",
    "IPAddress",
    "first_forbidden",
    "forbidden_reason",
    "numeric_host",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# --8<-- [start:numeric]
def numeric_host(host: str) -> IPAddress | None:
    """The address a numeric host name stands for, in any spelling.

    ``ipaddress`` accepts only the dotted-quad and IPv6 forms. The C resolver
    (and so ``urlopen``) also accepts ``2130706433``, ``0x7f.1`` and
    ``0177.0.0.1``, all of them 127.0.0.1: ``inet_aton`` reads them the same
    way. Returns None for a name that needs DNS.
    """
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


# --8<-- [end:numeric]


# --8<-- [start:policy]
# Ranges refused whatever ``is_global`` says on this Python (3.11 to 3.13).
EXTRA_BLOCKED = [
    ipaddress.ip_network(net)
    for net in (
        "100.64.0.0/10",  # shared address space (carrier-grade NAT)
        "192.0.0.0/24",  # IETF protocol assignments
        "::/96",  # IPv4-compatible IPv6 (deprecated): ::127.0.0.1
        "64:ff9b:1::/48",  # local-use NAT64 (private since 3.11.10/3.12.4)
        "2002::/16",  # 6to4 (private since 3.11.10/3.12.4)
    )
]


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries: mapped, 6to4, NAT64."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:  # ::ffff:10.0.0.1
        return address.ipv4_mapped
    if address.sixtofour is not None:  # 2002:0a00:0001::
        return address.sixtofour
    if address in ipaddress.ip_network("64:ff9b::/96"):  # NAT64 well-known
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def forbidden_reason(address: IPAddress) -> str | None:
    """Why ``address`` may not receive a webhook, or None if it may."""
    inner = _embedded_ipv4(address)
    if inner is not None:
        reason = forbidden_reason(inner)
        if reason is not None:
            return f"{reason} ({inner} inside)"
    checks = [
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),  # 169.254.169.254 is here
        ("unspecified", address.is_unspecified),
        ("multicast", address.is_multicast),  # is_global is True for these
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("special-purpose", any(address in net for net in EXTRA_BLOCKED)),
        ("not global", not address.is_global),
    ]
    return next((name for name, hit in checks if hit), None)


# --8<-- [end:policy]


def first_forbidden(addresses: Iterable[IPAddress]) -> tuple[IPAddress, str] | None:
    """The first address of ``addresses`` that is refused, with the reason."""
    for address in addresses:
        reason = forbidden_reason(address)
        if reason is not None:
            return address, reason
    return None
