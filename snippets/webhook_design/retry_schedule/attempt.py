"""One delivery attempt: a single POST with a timeout, never a redirect."""

from __future__ import annotations

import http.client
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Response", "post"]


@dataclass(frozen=True)
class Response:
    """What one attempt got back: a status, or an error and no status."""

    status: int | None
    retry_after: str | None = None
    error: str | None = None

    @property
    def summary(self) -> str:
        """``HTTP 503`` or the error name, for logs and the attempt ledger."""
        return self.error or f"HTTP {self.status}"


# --8<-- [start:post]
def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> Response:
    """POST once without following redirects; I/O errors become a `Response`.

    ``timeout`` bounds the connect and every socket read, so an endpoint that
    accepts the connection and never answers costs about ``timeout`` seconds.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    factory = (
        http.client.HTTPSConnection
        if parts.scheme == "https"
        else http.client.HTTPConnection
    )
    connection = factory(parts.hostname, parts.port, timeout=timeout)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    try:
        connection.request(
            "POST",
            target,
            body=body,
            headers={"Content-Type": "application/json", **headers},
        )
        response = connection.getresponse()
        response.read(64 * 1024)  # the body does not matter; do not read it all
        return Response(response.status, response.getheader("Retry-After"))
    except TimeoutError:
        return Response(None, error="timeout")
    except (OSError, http.client.HTTPException) as error:
        return Response(None, error=type(error).__name__)
    finally:
        connection.close()


# --8<-- [end:post]
