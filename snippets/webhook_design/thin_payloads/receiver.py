"""The webhook endpoint: 204 once the event is applied, 503 until it can be."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from snippets.webhook_design.thin_payloads.client import ProviderError
from snippets.webhook_design.thin_payloads.consumer import NotYetVisible

__all__ = ["MAX_BODY", "EventReceiver"]

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024


# --8<-- [start:receiver]
class EventReceiver(ThreadingHTTPServer):
    """The webhook endpoint: parse the event, run `on_event`, then answer.

    204 once `on_event` returned; 503 with `Retry-After` when the object is
    not readable yet, or the API or the local store fails, so the provider
    delivers the event again later; 400 for a body that is not an event.
    """

    daemon_threads = False

    def __init__(
        self, address: tuple[str, int], on_event: Callable[[dict[str, Any]], object]
    ) -> None:
        super().__init__(address, _EventRequest)
        self.on_event = on_event

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/webhooks"


class _EventRequest(BaseHTTPRequestHandler):
    server: EventReceiver
    timeout = 10

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("content-length", "0"))
            if not 0 < length <= MAX_BODY:
                return self._answer(400)
            self.server.on_event(json.loads(self.rfile.read(length)))
        except (NotYetVisible, ProviderError, OSError, sqlite3.Error) as error:
            log.warning("event not processed yet: %s", error)
            return self._answer(503, retry_after=5)
        except (ValueError, KeyError, TypeError):
            return self._answer(400)
        self._answer(204)

    # --8<-- [end:receiver]

    def _answer(self, status: int, *, retry_after: int | None = None) -> None:
        self.send_response(status)
        if retry_after is not None:
            self.send_header("retry-after", str(retry_after))
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        log.debug(format, *args)
