"""The orchestrator over HTTP: its webhook endpoint and its command sender."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg

from snippets.webhook_design.async_request_reply import (
    MAX_BODY_BYTES,
    BackgroundServer,
    request,
)
from snippets.webhook_design.saga_callbacks.orchestrator import Orchestrator
from snippets.webhook_design.saga_callbacks.transitions import (
    Command,
    Refused,
    UnknownSaga,
)
from snippets.webhook_design.verify_then_dedupe import VerificationError, Verifier

__all__ = ["RETRYABLE", "WebhookEndpoint", "http_sender"]

log = logging.getLogger(__name__)


class _WebhookHTTPServer(ThreadingHTTPServer):
    daemon_threads = False
    orchestrator: Orchestrator
    verifiers: Mapping[str, Verifier]  # provider name -> its secret's verifier


class _WebhookHandler(BaseHTTPRequestHandler):
    timeout = 10.0
    server: _WebhookHTTPServer

    # --8<-- [start:endpoint]
    def do_POST(self) -> None:
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            return self._answer(400, "bad length")
        body = self.rfile.read(int(length))
        prefix, _, provider = self.path.rpartition("/")
        verifier = self.server.verifiers.get(provider)
        if prefix != "/webhooks" or verifier is None:
            return self._answer(404, "no such provider")
        try:  # the provider's own secret proves the delivery is from it
            webhook_id = verifier.verify(dict(self.headers.items()), body).msg_id
            event = json.loads(body)
            saga_id = uuid.UUID(str(event["saga_id"]))
            outcome = self.server.orchestrator.handle(
                provider, webhook_id, str(event["type"]), saga_id
            )
        except VerificationError:
            return self._answer(401, "bad signature")
        except (ValueError, KeyError, TypeError):
            return self._answer(400, "malformed event")
        except UnknownSaga:
            return self._answer(404, "unknown saga")
        except psycopg.Error:
            log.exception("cannot apply webhook")
            return self._answer(503, "try again")  # rolled back: the retry is new
        self._answer(200, outcome)

    # --8<-- [end:endpoint]

    def _answer(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class WebhookEndpoint(BackgroundServer):
    """The orchestrator's webhook endpoint on a thread; a context manager.

    Each provider posts to ``{url}/{provider}``. The endpoint verifies the
    Standard Webhooks signature with that provider's secret, then hands the
    event to `Orchestrator.handle`; ``(provider, webhook-id)`` is the inbox key.

    Args:
        orchestrator: Applies the events.
        secrets: Each provider's name and signing secret (``whsec_...``).
        host: Interface to listen on; port 0 picks a free port.
    """

    def __init__(
        self,
        orchestrator: Orchestrator,
        secrets: Mapping[str, str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        httpd = _WebhookHTTPServer((host, port), _WebhookHandler)
        httpd.orchestrator = orchestrator
        httpd.verifiers = {name: Verifier([key]) for name, key in secrets.items()}
        super().__init__(httpd, "/webhooks")


# --8<-- [start:sender]
RETRYABLE = frozenset({408, 425, 429})  # 4xx that mean "not now", not "never"


def http_sender(url: str, *, timeout: float = 5.0) -> Callable[[Command], None]:
    """An `Orchestrator.relay` sender that POSTs each command to ``url``.

    The command id goes out as ``Idempotency-Key``, so a provider that has
    seen it already does nothing.

    Raises:
        Refused: A 4xx other than 408, 425 and 429: the provider will not do it.
        OSError: The provider could not be reached; the relay retries later.
        RuntimeError: Any other answer that is not a 2xx; retried later.
    """

    def send(command: Command) -> None:
        body = json.dumps(
            {
                "command": command.command,
                "saga_id": str(command.saga_id),
                **command.payload,
            }
        ).encode()
        answer = request(
            "POST",
            url,
            body=body,
            headers={
                "Content-Type": "application/json",
                "Idempotency-Key": f'"cmd-{command.id}"',
            },
            timeout=timeout,
        )
        if 400 <= answer.status < 500 and answer.status not in RETRYABLE:
            reason = answer.body.decode(errors="replace")[:200]
            raise Refused(f"{answer.status} {reason}".strip())
        if not 200 <= answer.status < 300:
            raise RuntimeError(f"provider answered {answer.status} to {command}")

    return send


# --8<-- [end:sender]
