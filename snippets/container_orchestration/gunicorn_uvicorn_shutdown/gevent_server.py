"""gevent's WSGIServer with a SIGTERM handler that drains before the exit.

The process that runs it patches itself first (``gevent.monkey.patch_all()``,
as the first lines of the program); nothing here patches the importer.
``snippets/support/container_orchestration_gevent.py`` is that program for
the demo and the tests.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

__all__ = ["serve_gevent"]


# --8<-- [start:pattern]
def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def serve_gevent(
    app: Any, address: tuple[str, int], drain: float, connections: int = 1000
) -> None:
    """Serve `app` until SIGTERM, then drain for up to `drain` seconds."""
    import gevent
    from gevent.pool import Pool
    from gevent.pywsgi import WSGIServer

    # A pool: stop() waits only for the greenlets of the server's pool.
    server = WSGIServer(address, app, spawn=Pool(connections))

    def stop() -> None:  # runs in a greenlet of its own, not in the hub
        log("SIGTERM: stopping")
        server.stop(timeout=drain)  # close the listener, wait, kill the rest

    gevent.signal_handler(signal.SIGTERM, stop)
    server.start()
    log(f"running on http://{address[0]}:{server.server_port}")
    # serve_forever() stops the server once more when it returns, with its
    # own stop_timeout (1 s by default): give it the same budget.
    server.serve_forever(stop_timeout=drain)
    # --8<-- [end:pattern]
