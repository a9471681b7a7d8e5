"""The applications the servers run: one slow endpoint each, WSGI and ASGI.

``GET /<item>`` calls the dependency at ``$DEPENDENCY`` (``host:port``) and
answers with its reply, so a caller holds a request in flight for as long as
it holds the dependency's answer.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from snippets.container_orchestration.graceful_shutdown import (
    call_dependency,
    call_dependency_async,
)

__all__ = ["app", "asgi_app"]

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


def _dependency() -> tuple[tuple[str, int], float]:
    host, port = os.environ["DEPENDENCY"].rsplit(":", 1)
    return (host, int(port)), float(os.environ.get("DEPENDENCY_TIMEOUT", "60"))


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """WSGI: one dependency call per request, in the worker's thread."""
    address, timeout = _dependency()
    answer = call_dependency(address, environ["PATH_INFO"].strip("/"), timeout)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [answer.encode()]


async def asgi_app(
    scope: Scope,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    """ASGI: the same endpoint as a coroutine (no lifespan support needed)."""
    if scope["type"] != "http":
        return
    address, timeout = _dependency()
    answer = await call_dependency_async(address, scope["path"].strip("/"), timeout)
    headers = [(b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer.encode()})
