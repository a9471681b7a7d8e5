"""A small cancellable HTTP client for JSON answers (asyncio streams)."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

__all__ = ["MAX_BODY", "LoadError", "fetch_json"]

MAX_BODY = 1 << 20  # bytes a client accepts in one answer


class LoadError(Exception):
    """The server answered with an error status or an unreadable body."""


def _parse_head(head: str) -> tuple[int, dict[str, str]]:
    """Status code and lower-cased headers of an HTTP/1.1 response head."""
    status_line, *lines = head.rstrip("\r\n").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    pairs = (line.split(":", 1) for line in lines if ":" in line)
    return status, {name.strip().lower(): value.strip() for name, value in pairs}


# --8<-- [start:fetch]
async def fetch_json(url: str) -> Any:
    """GET `url` on a fresh connection and return the decoded JSON body.

    The connection is closed on every way out, cancellation included, so a
    server that watches its connections sees an abandoned request at once.
    Bound the call with a timeout (`LatestLoader` does). Raises `LoadError`
    for a status other than 200 or a body that is not JSON, `OSError` when the
    connection is refused or reset.
    """
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(
            f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Connection: close\r\n\r\n".encode("ascii")
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status, headers = _parse_head(head.decode("latin-1"))
        length = int(headers.get("content-length", "-1"))
        if not 0 <= length <= MAX_BODY:
            raise LoadError(f"{url}: Content-Length {length}")
        body = await reader.readexactly(length)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
        raise LoadError(f"{url}: {type(e).__name__}") from e
    finally:
        writer.close()  # also when cancelled: the server reads end-of-file
    if status != 200:
        raise LoadError(f"{url}: HTTP {status}")
    try:
        return json.loads(body)
    except ValueError as error:
        raise LoadError(f"{url}: the body is not JSON") from error


# --8<-- [end:fetch]
