"""Harness for the FastAPI cached-settings page: real uvicorn, real requests.

`serve()` runs an app under uvicorn on 127.0.0.1 (lifespan on) in a thread.
`first_requests()` sends requests from threads released together by a
barrier, the way a burst arrives right after a deploy. `loads()` counts the
"settings loaded" log records and holds each loader until `racers` of them
are inside (or `hold` seconds pass), so a race happens on every run.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from snippets.support.webhook_design_frameworks import serve_asgi

__all__ = ["Loads", "first_requests", "get", "loads", "serve"]


class Loads(logging.Handler):
    """Counts settings loads; each one waits for the others at a barrier."""

    def __init__(self, racers: int, hold: float) -> None:
        super().__init__(logging.INFO)
        self.count = 0
        self.threads: set[int | None] = set()
        self._lock = threading.Lock()
        self._inside = threading.Barrier(racers)
        self._hold = hold

    def handle(self, record: logging.LogRecord) -> bool:
        # logging.Handler.handle() holds the handler's lock around emit(),
        # which would queue the loads one behind the other at the barrier.
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock:
            self.count += 1
            self.threads.add(record.thread)
        try:
            self._inside.wait(timeout=self._hold)
        except threading.BrokenBarrierError:
            pass  # fewer racers came in: that is what a fix looks like


@contextmanager
def loads(racers: int, hold: float = 1.0) -> Iterator[Loads]:
    logger = logging.getLogger("orders.settings")
    handler = Loads(racers, hold)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve ``app`` under uvicorn on 127.0.0.1, lifespan on; yield its URL."""
    with serve_asgi(app, lifespan="on") as url:
        yield url


def get(url: str, path: str = "/info") -> Any:
    """GET ``path`` over a new connection; the decoded JSON body."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=20)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"{response.status}: {body!r}")
        return json.loads(body)
    finally:
        conn.close()


def first_requests(url: str, count: int, path: str = "/info") -> list[Any]:
    """`count` requests sent at the same moment from `count` threads."""
    start = threading.Barrier(count)
    results: list[Any] = []
    errors: list[BaseException] = []

    def client() -> None:
        start.wait(timeout=10)
        try:
            results.append(get(url, path))
        except Exception as error:
            errors.append(error)

    pool = [threading.Thread(target=client) for _ in range(count)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=30)
    if errors:
        raise errors[0]
    return results
