"""Loopback HTTP servers in demos and tests: run one on a thread for a block."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

__all__ = ["serving"]

Server = TypeVar("Server", bound=http.server.HTTPServer)


@contextmanager
def serving(server: Server) -> Iterator[Server]:
    """Run ``server`` on a thread; shut it down and wait for it on exit.

    A short poll interval: ``shutdown()`` waits for the loop's next turn.
    """
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
