"""The app behind the proxy, for gunicorn (WSGI) and uvicorn (ASGI).

``GET /`` answers ``ok``. ``POST /orders`` records an order, one line
appended to the file ``$ORDERS`` (so several processes count together), then
takes ``$HOLD`` seconds (0 unless set) before it answers with the count.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

__all__: list[str] = []  # run by the servers, not part of the page's API

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def record_order() -> int:
    """Append one order; the number of orders so far."""
    path = os.environ["ORDERS"]
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"order\n")
    finally:
        os.close(fd)
    with open(path, "rb") as orders:
        return orders.read().count(b"\n")


def hold() -> float:
    return float(os.environ.get("HOLD", "0"))


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    if environ["REQUEST_METHOD"] == "POST":
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        body = f"order {record_order()}".encode()
        time.sleep(hold())
    else:
        body = b"ok"
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


async def asgi_app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    assert scope["type"] == "http"
    if scope["method"] == "POST":
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        body = f"order {record_order()}".encode()
        await asyncio.sleep(hold())
    else:
        body = b"ok"
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
