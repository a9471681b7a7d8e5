"""Standard-library HTTP clients with timeouts, and the errors they raise.

`http_get` and `async_http_get` turn a dependency's failure (no answer, a
timeout, a 5xx or a 429) into `DependencyError`, and a caller's mistake (any
other 4xx) into `RequestError`, so a circuit breaker can count only the first.
"""

from __future__ import annotations

import asyncio
import http.client
from urllib.parse import urlsplit

__all__ = ["DependencyError", "RequestError", "async_http_get", "http_get"]


# --8<-- [start:errors]
class DependencyError(Exception):
    """The dependency failed this call: no answer, a timeout, a 5xx or a 429.

    Attributes:
        status: The HTTP status, or None when no response arrived.
        retry_after: Seconds from the response's `Retry-After` header, if any.
    """

    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class RequestError(Exception):
    """The dependency refused this request (4xx other than 429): a caller bug."""


def _raise_for_status(where: str, status: int, retry_after: str | None) -> None:
    """Map an HTTP status to the exception a circuit breaker understands."""
    if status == 429 or status >= 500:
        seconds = float(retry_after) if retry_after and retry_after.isdigit() else None
        raise DependencyError(f"{where}: HTTP {status}", status, seconds)
    if status >= 400:
        raise RequestError(f"{where}: HTTP {status}")


# --8<-- [end:errors]


# --8<-- [start:http]
def http_get(url: str, timeout: float) -> bytes:
    """GET `url` and return the body.

    `timeout` bounds the connect and each socket read, not the whole call.

    Raises:
        DependencyError: No connection, a timeout, a 5xx or a 429.
        RequestError: Any other 4xx.
    """
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        conn.request("GET", parts.path or "/")
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as error:  # refused, reset, timeout
        raise DependencyError(f"{parts.netloc}: {type(error).__name__}") from error
    finally:
        conn.close()
    _raise_for_status(parts.netloc, response.status, response.getheader("Retry-After"))
    return body


# --8<-- [end:http]


async def async_http_get(url: str, timeout: float) -> bytes:
    """The asyncio twin of `http_get`: one request per connection.

    Here `timeout` bounds the whole call.

    Raises:
        DependencyError: No connection, a timeout, a 5xx or a 429.
        RequestError: Any other 4xx.
    """
    parts = urlsplit(url)
    request = (
        f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        "Connection: close\r\n\r\n"
    )
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
            try:
                writer.write(request.encode("ascii"))
                await writer.drain()
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                body = await reader.read()  # the server closes after the body
            finally:
                writer.close()
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
        raise DependencyError(f"{parts.netloc}: {type(error).__name__}") from error
    status_line, *header_lines = head.split("\r\n")
    headers = dict(line.split(":", 1) for line in header_lines if ":" in line)
    retry_after = {k.lower(): v.strip() for k, v in headers.items()}.get("retry-after")
    _raise_for_status(parts.netloc, int(status_line.split()[1]), retry_after)
    return body


# --------------------------------------------------------------------------- #
