"""A dependency over TCP, with a timeout derived from the drain budget."""

from __future__ import annotations

import asyncio
import socket

__all__ = [
    "call_dependency",
    "call_dependency_async",
    "dependency_timeout",
]


# --8<-- [start:dependency-timeout]
def dependency_timeout(grace: float) -> float:
    """How long one dependency call may take, given the drain budget `grace`.

    A request that started just before SIGTERM must end by itself before the
    drain deadline: its calls get the budget less a second for answering (half
    the budget when that is under two seconds).
    """
    return max(grace - 1.0, grace / 2)


# --8<-- [end:dependency-timeout]


def call_dependency(address: tuple[str, int], item: str, timeout: float) -> str:
    """Send `item` to the dependency at `address`; return its one-line answer."""
    with socket.create_connection(address, timeout=timeout) as conn:
        conn.sendall(item.encode() + b"\n")
        with conn.makefile("rb") as answers:
            answer = answers.readline()
    if not answer.endswith(b"\n"):
        raise ConnectionError("the dependency closed the connection early")
    return answer.decode()


async def call_dependency_async(
    address: tuple[str, int], item: str, timeout: float
) -> str:
    """The asyncio version of `call_dependency`."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(*address)
        try:
            writer.write(item.encode() + b"\n")
            await writer.drain()
            answer = await reader.readline()
        finally:
            writer.close()
    if not answer.endswith(b"\n"):
        raise ConnectionError("the dependency closed the connection early")
    return answer.decode()
