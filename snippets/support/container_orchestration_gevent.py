"""gevent's WSGIServer as the process the gevent demo and tests send SIGTERM.

    python -m snippets.support.container_orchestration_gevent \\
        --variant VARIANT --drain SECONDS

It patches itself before anything else imports ``socket`` or ``threading``,
as a gevent program must; the processes that start it are never patched.
``handler`` is the page's `serve_gevent`; ``naive`` installs no handler; the
others change one thing in `serve_gevent`: ``no-pool`` serves without a
pool, ``signal-module`` calls ``server.stop()`` from a plain `signal.signal`
handler, ``default-stop-timeout`` calls ``serve_forever()`` without
``stop_timeout``. Every variant serves the page's WSGI ``app`` on 127.0.0.1
and logs ``running on http://127.0.0.1:PORT`` to stderr.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
from gevent.pool import Pool  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402

from snippets.container_orchestration.gunicorn_uvicorn_shutdown import (  # noqa: E402
    app,
    serve_gevent,
)

__all__ = ["VARIANTS", "serve_variant"]

VARIANTS = ("naive", "handler", "no-pool", "signal-module", "default-stop-timeout")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def serve_variant(variant: str, drain: float) -> None:
    """`serve_gevent` with one thing changed, or the server with no handler."""
    spawn: Any = "default" if variant in ("naive", "no-pool") else Pool(1000)
    server = WSGIServer(("127.0.0.1", 0), app, spawn=spawn)

    def stop(*_: object) -> None:
        log("SIGTERM: stopping")
        server.stop(timeout=drain)

    if variant == "signal-module":
        signal.signal(signal.SIGTERM, stop)  # runs in whichever greenlet runs
    elif variant != "naive":
        gevent.signal_handler(signal.SIGTERM, stop)
    server.start()
    log(f"running on http://127.0.0.1:{server.server_port}")
    if variant in ("naive", "default-stop-timeout"):
        server.serve_forever()
    else:
        server.serve_forever(stop_timeout=drain)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=VARIANTS, default="handler")
    parser.add_argument("--drain", type=float, default=5.0)
    args = parser.parse_args()
    if args.variant == "handler":
        serve_gevent(app, ("127.0.0.1", 0), args.drain)
    else:
        serve_variant(args.variant, args.drain)


if __name__ == "__main__":
    main()
