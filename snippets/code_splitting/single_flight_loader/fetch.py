"""Fetch one part from an HTTP origin, with asyncio streams or urllib."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from http import HTTPStatus

__all__ = ["FETCH_TIMEOUT", "PartLoadError", "fetch_part", "fetch_part_blocking"]

FETCH_TIMEOUT = 5.0  # seconds for one part, connect to last byte


class PartLoadError(Exception):
    """A part could not be fetched (the origin answered with an error)."""


# --8<-- [start:fetch]
async def fetch_part(base_url: str, name: str, timeout: float = FETCH_TIMEOUT) -> str:
    """Fetch ``/parts/<name>`` over HTTP/1.1 with asyncio streams.

    Raises:
        PartLoadError: The origin answered with a status other than 200.
        TimeoutError: No complete answer within ``timeout`` seconds.
    """
    host, port = base_url.removeprefix("http://").split(":")
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            request = f"GET /parts/{name} HTTP/1.1\r\nHost: {host}\r\n"
            writer.write((request + "Connection: close\r\n\r\n").encode())
            await writer.drain()
            status_line = await reader.readline()
            rest = await reader.read()  # headers and body, up to EOF
            body = rest.partition(b"\r\n\r\n")[2]
        finally:
            writer.close()
            await writer.wait_closed()
    status = int(status_line.split()[1]) if status_line else 0
    if status != HTTPStatus.OK:
        raise PartLoadError(f"{name}: HTTP {status}")
    return body.decode()


def fetch_part_blocking(
    base_url: str, name: str, timeout: float = FETCH_TIMEOUT
) -> str:
    """The blocking version of `fetch_part`, for threads (urllib)."""
    try:
        with urllib.request.urlopen(f"{base_url}/parts/{name}", timeout=timeout) as r:
            return bytes(r.read()).decode()
    except urllib.error.HTTPError as exc:
        raise PartLoadError(f"{name}: HTTP {exc.code}") from exc


# --8<-- [end:fetch]
