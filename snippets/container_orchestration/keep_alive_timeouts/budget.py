"""Which side of each connection closes it when it is idle.

A connection between a proxy (the client side, which sends requests) and
the next server is safe to reuse only if the proxy gives up on it first: the
proxy then never sends a request on a connection the server is closing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Hop", "app_keep_alive", "hop_problems"]


# --8<-- [start:budget]
@dataclass(frozen=True)
class Hop:
    """One kept-alive connection: who sends on it, who answers, and how many
    seconds each keeps it open while it is idle."""

    client: str
    client_idle: float  # nginx upstream keepalive_timeout, ALB idle timeout
    server: str
    server_idle: float  # gunicorn keepalive, uvicorn --timeout-keep-alive


def hop_problems(hops: Sequence[Hop], margin: float = 5.0) -> list[str]:
    """A line for each hop whose server may close an idle connection first."""
    problems = []
    for hop in hops:
        if hop.server_idle < hop.client_idle + margin:
            problems.append(
                f"{hop.client} -> {hop.server}: {hop.server} closes idle "
                f"connections after {hop.server_idle:g} s, {hop.client} keeps "
                f"them {hop.client_idle:g} s; give {hop.server} at least "
                f"{app_keep_alive(hop.client_idle, margin)} s"
            )
    return problems


def app_keep_alive(client_idle: float, margin: float = 5.0) -> int:
    """The server's idle timeout: the client's, plus a margin, in whole
    seconds (gunicorn and uvicorn take integers)."""
    return math.ceil(client_idle + margin)


# --8<-- [end:budget]
