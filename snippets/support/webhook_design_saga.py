"""Harness for the saga-callbacks demo and tests.

A barrier at one of the orchestrator's named checkpoints (`Hold`), a fake
payment and fulfilment provider over HTTP (`FakeProvider`), an environment
that wires them to a PostgreSQL schema (`environment`). The scenarios the page
shows are in ``webhook_design_saga_cases``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg

from snippets.support.services import Postgres
from snippets.webhook_design.async_request_reply import BackgroundServer, request
from snippets.webhook_design.saga_callbacks import (
    Orchestrator,
    WebhookEndpoint,
    create_schema,
    http_sender,
)
from snippets.webhook_design.saga_callbacks.broken import NaiveOrchestrator
from snippets.webhook_design.verify_then_dedupe import new_secret, signature_headers

__all__ = [
    "RUNS",
    "WAIT",
    "Env",
    "FakeProvider",
    "Hold",
    "Item",
    "environment",
    "race",
    "sign",
]

WAIT = 10.0  # seconds; every wait here is bounded by it
RUNS = 25

Item = tuple[int, bool]  # (stock, semantic lock held)


# --------------------------------------------------------------------------- #
# A barrier at a checkpoint
# --------------------------------------------------------------------------- #


class Hold:
    """The first arrival of each thread at ``point`` waits for all parties."""

    def __init__(self, point: str, parties: int = 2) -> None:
        self.point = point
        self.barrier = threading.Barrier(parties)
        self._seen: set[int] = set()
        self._lock = threading.Lock()

    def __call__(self, name: str) -> None:
        if name != self.point:
            return
        with self._lock:
            if threading.get_ident() in self._seen:
                return  # a second transition in the same handler goes on
            self._seen.add(threading.get_ident())
        self.barrier.wait(WAIT)


class _Held:
    """Mixin: routes the orchestrator's checkpoints to the current `Hold`."""

    hold: Hold | None = None

    def _checkpoint(self, name: str) -> None:
        if self.hold is not None:
            self.hold(name)


class HeldOrchestrator(_Held, Orchestrator):
    pass


class HeldNaive(_Held, NaiveOrchestrator):
    pass


# --------------------------------------------------------------------------- #
# A fake provider
# --------------------------------------------------------------------------- #


class _ProviderServer(ThreadingHTTPServer):
    daemon_threads = False
    lock: threading.Lock
    received: dict[str, tuple[str, str]]  # Idempotency-Key -> (command, saga)
    captures: bool  # a charge is captured at once: it can no longer be cancelled


class _ProviderHandler(BaseHTTPRequestHandler):
    server: _ProviderServer

    def do_POST(self) -> None:
        data = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        key = self.headers["Idempotency-Key"]
        command, saga = data["command"], data["saga_id"]
        with self.server.lock:  # a command seen before is not executed again
            captured = ("charge", saga) in self.server.received.values()
            refused = self.server.captures and command == "cancel_payment" and captured
            if not refused:
                self.server.received.setdefault(key, (command, saga))
        text = b"payment already captured" if refused else b""
        self.send_response(409 if refused else 202)  # a charge cannot be undone
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class FakeProvider(BackgroundServer):
    """Payment and fulfilment in one: records each command it executes.

    With ``captures``, it answers ``409`` to ``cancel_payment`` for a saga
    whose charge it has already taken.
    """

    def __init__(self, *, captures: bool = False) -> None:
        self._server = _ProviderServer(("127.0.0.1", 0), _ProviderHandler)
        self._server.lock = threading.Lock()
        self._server.received = {}
        self._server.captures = captures
        super().__init__(self._server, "/commands")

    def commands(self, saga_id: uuid.UUID) -> list[str]:
        with self._server.lock:
            found = list(self._server.received.values())
        return [command for command, saga in found if saga == str(saga_id)]


# --------------------------------------------------------------------------- #
# The environment
# --------------------------------------------------------------------------- #


def sign(secret: str, msg_id: str, body: bytes) -> dict[str, str]:
    """Standard Webhooks headers for one delivery attempt, timestamped now."""
    return signature_headers([secret], msg_id, int(time.time()), body)


@dataclass
class Env:
    dsn: str
    orchestrator: Orchestrator
    endpoint: WebhookEndpoint
    provider: FakeProvider
    secrets: dict[str, str]  # provider name -> signing secret

    def webhook(
        self,
        event: str,
        saga_id: uuid.UUID,
        webhook_id: str | None = None,
        provider: str | None = None,
    ) -> str:
        """Send a signed webhook; return the answer (``"401 ..."`` if not 200).

        The provider is the one that sends ``event`` unless one is named.
        """
        body = json.dumps({"type": event, "saga_id": str(saga_id)}).encode()
        msg_id = webhook_id or f"evt_{uuid.uuid4().hex}"
        name = provider or (
            "fulfilment" if event.startswith("shipment.") else "payments"
        )
        headers = sign(self.secrets[name], msg_id, body)
        url = f"{self.endpoint.url}/{name}"
        answer = request("POST", url, body=body, headers=headers)
        text = answer.body.decode()
        return text if answer.status == 200 else f"{answer.status} {text}"

    def relay(self) -> Counter[str]:
        return self.orchestrator.relay(http_sender(self.provider.url))

    def add_item(self, sku: str, stock: int) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO items (sku, stock) VALUES (%s, %s)", (sku, stock))

    def item(self, sku: str) -> Item:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT stock, locked_by IS NOT NULL FROM items WHERE sku = %s", (sku,)
            ).fetchone()
        assert row is not None
        return int(row[0]), bool(row[1])

    def state(self, saga_id: uuid.UUID) -> str:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT state FROM sagas WHERE id = %s", (saga_id,)
            ).fetchone()
        assert row is not None
        return str(row[0])

    def hold(self, hold: Hold | None) -> None:
        """Hold racing threads at a checkpoint from now on (None: stop)."""
        assert isinstance(self.orchestrator, _Held)
        self.orchestrator.hold = hold


@contextmanager
def environment(
    postgres: Postgres, naive: bool = False, *, captures: bool = False
) -> Iterator[Env]:
    """Tables in the schema of ``postgres``, an endpoint, a fake provider."""
    create_schema(postgres.dsn)
    secrets = {"payments": new_secret(), "fulfilment": new_secret()}
    orchestrator = (HeldNaive if naive else HeldOrchestrator)(postgres.dsn)
    with (
        WebhookEndpoint(orchestrator, secrets) as endpoint,
        FakeProvider(captures=captures) as provider,
    ):
        yield Env(postgres.dsn, orchestrator, endpoint, provider, secrets)


def race(*actions: Callable[[], Any]) -> list[Any]:
    """Run the actions on threads at once; return their results in order."""
    results: list[Any] = [None] * len(actions)
    errors: list[BaseException] = []

    def run(index: int, action: Callable[[], Any]) -> None:
        try:
            results[index] = action()
        except BaseException as error:
            errors.append(error)

    threads = [
        threading.Thread(target=run, args=(index, action))
        for index, action in enumerate(actions)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert not any(thread.is_alive() for thread in threads), "a racer is stuck"
    assert errors == [], errors
    return results
