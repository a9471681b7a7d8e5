"""The endpoint: verify, claim and apply, then answer."""

from __future__ import annotations

import logging
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast

from snippets.webhook_design.verify_then_dedupe.store import DeliveryStore, Effect
from snippets.webhook_design.verify_then_dedupe.verifier import (
    VerificationError,
    Verifier,
)

__all__ = ["MAX_BODY_BYTES", "WebhookReceiver"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() waits for requests in flight
    verifier: Verifier
    store: DeliveryStore
    effect: Effect


# --8<-- [start:handler]
class _Handler(BaseHTTPRequestHandler):
    timeout = 10.0  # seconds a slow client may take per socket operation

    def do_POST(self) -> None:
        server = cast(_Server, self.server)
        length = self.headers.get("Content-Length", "")
        if not length.isdigit():
            return self._answer(411, "content-length required")
        if int(length) > MAX_BODY_BYTES:
            return self._answer(413, "body too large")
        body = self.rfile.read(int(length))  # the raw bytes; verify these
        if len(body) != int(length):
            return self._answer(400, "body shorter than content-length")
        try:
            delivery = server.verifier.verify(dict(self.headers.items()), body)
        except VerificationError as error:
            return self._answer(401, str(error))
        try:  # a payload the effect cannot apply is parked, and answered 200
            outcome = server.store.accept(delivery, server.effect)
        except sqlite3.Error:
            log.exception("cannot store delivery %s", delivery.msg_id)
            return self._answer(503, "try again later")  # the provider retries
        except Exception:
            log.exception("effect failed for delivery %s", delivery.msg_id)
            return self._answer(500, "internal error")  # rolled back: retry is new
        self._answer(200, outcome)

    # --8<-- [end:handler]

    def _answer(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


# --8<-- [start:receiver]
class WebhookReceiver:
    """A webhook endpoint on a thread: verify, claim and apply, then answer.

    Use it as a context manager; leaving the block stops accepting requests
    and waits for the ones in flight.

    Args:
        verifier: Checks signatures and timestamps.
        store: Claims each ``webhook-id`` once.
        effect: Applies a new delivery inside the claim's transaction.
        host: Interface to listen on; port 0 picks a free port.
    """

    def __init__(
        self,
        verifier: Verifier,
        store: DeliveryStore,
        effect: Effect,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._server = _Server((host, port), _Handler)
        self._server.verifier = verifier
        self._server.store = store
        self._server.effect = effect
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},  # how soon shutdown() is noticed
            name="webhook-receiver",
            daemon=True,
        )

    @property
    def url(self) -> str:
        """The endpoint's URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/webhook"

    # --8<-- [end:receiver]

    # --8<-- [start:receiver-stop]
    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()  # stop the accept loop
        self._server.server_close()  # then wait for requests in flight
        self._thread.join(timeout=5)


# --8<-- [end:receiver-stop]
