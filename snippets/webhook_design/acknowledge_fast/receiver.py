"""The webhook endpoint: verify, commit to the inbox, then answer 202."""

from __future__ import annotations

import logging
import sqlite3
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from snippets.webhook_design.acknowledge_fast.inbox import Inbox

__all__ = ["MAX_BODY", "InboxReceiver", "WebhookServer"]

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20  # 1 MiB; Standard Webhooks recommends payloads under 20 kB


# --8<-- [start:server]
class WebhookServer(ThreadingHTTPServer):
    """One webhook endpoint. Subclasses decide what `accept` does.

    Request threads are not daemons: `server_close()` waits for the requests
    in flight, so a clean shutdown never cuts a handler off halfway.
    """

    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], secret: str) -> None:
        super().__init__(address, _WebhookRequest)
        self.verifier = Webhook(secret)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/webhooks"

    def accept(self, delivery_id: str, body: bytes) -> int:
        """Take a verified delivery and return the status code to answer."""
        raise NotImplementedError


# --8<-- [end:server]


# --8<-- [start:request]
class _WebhookRequest(BaseHTTPRequestHandler):
    server: WebhookServer
    timeout = 10  # seconds a client may take to send its request

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("content-length", "0"))
            if not 0 < length <= MAX_BODY:
                return self._answer(413 if length > MAX_BODY else 400)
            body = self.rfile.read(length)
            self.server.verifier.verify(body, dict(self.headers), json_parse=False)
        except (WebhookVerificationError, ValueError):
            return self._answer(401)  # unsigned, badly signed or stale
        except OSError:
            return self._answer(400)  # the body never arrived in full
        self._answer(self.server.accept(self.headers["webhook-id"], body))

    def _answer(self, status: int) -> None:
        try:
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()
        except OSError:
            log.warning("no one to answer %d to: the sender hung up", status)

    def log_message(self, format: str, *args: object) -> None:
        log.debug(format, *args)


# --8<-- [end:request]


# --8<-- [start:receiver]
class InboxReceiver(WebhookServer):
    """The pattern: verify, commit the delivery to the inbox, then answer 202.

    A duplicate (same `webhook-id`) is answered 202 as well: it is stored
    already. If the write fails, the answer is 503, never a 2xx, so the
    provider keeps the delivery and tries again later.
    """

    def __init__(self, address: tuple[str, int], secret: str, inbox: Inbox) -> None:
        super().__init__(address, secret)
        self.inbox = inbox

    def accept(self, delivery_id: str, body: bytes) -> int:
        try:
            self.inbox.add(delivery_id, body)  # committed when this returns
        except sqlite3.Error:
            log.exception("could not store delivery %s", delivery_id)
            return 503
        return 202


# --8<-- [end:receiver]
