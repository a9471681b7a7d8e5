"""A fake webhook provider for the thin-payloads demos and tests.

`ProviderAPI` serves versioned customers at ``GET /v1/customers/{id}`` behind a
bearer token, reads them through a "replica" that lags a set number of reads
behind each write, records every read (an audit log), and builds events in
both shapes. `send_event` delivers one event with one POST, as a provider does.
"""

from __future__ import annotations

import hmac
import http.client
import itertools
import json
import logging
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from snippets.webhook_design.thin_payloads import Snapshot, full_event, thin_event

__all__ = ["DEMO_TOKEN", "ProviderAPI", "send_event"]

log = logging.getLogger(__name__)

DEMO_TOKEN = "demo-read-token"


class ProviderAPI(ThreadingHTTPServer):
    """The provider side: versioned customers, their API and their events.

    `update` writes to the primary. Reads go through a replica: after each
    write, the next `replica_lag` reads of that object still return the state
    before the write (404 if the object did not exist yet). `audit` records
    every read, as a provider that sends thin events can.
    """

    daemon_threads = False

    def __init__(
        self, address: tuple[str, int], token: str, *, replica_lag: int = 0
    ) -> None:
        super().__init__(address, _ProviderRequest)
        self.token, self.replica_lag = token, replica_lag
        self.audit: list[tuple[str, int | None]] = []  # (object id, version read)
        self._lock = threading.Lock()
        self._primary: dict[str, Snapshot] = {}
        self._before: dict[str, Snapshot | None] = {}
        self._stale_reads: dict[str, int] = {}
        self._event_ids = itertools.count(1)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def update(self, object_id: str, **changes: Any) -> Snapshot:
        """Write a new version of an object; returns it."""
        with self._lock:
            old = self._primary.get(object_id)
            data = {**(old.data if old else {}), **changes}
            new = Snapshot(object_id, old.version + 1 if old else 1, data)
            self._primary[object_id] = new
            self._before[object_id] = old
            self._stale_reads[object_id] = self.replica_lag
        return new

    def read(self, object_id: str) -> Snapshot | None:
        """What the API serves now: the replica's view of the object."""
        with self._lock:
            if self._stale_reads.get(object_id, 0) > 0:
                self._stale_reads[object_id] -= 1
                found = self._before.get(object_id)
            else:
                found = self._primary.get(object_id)
            self.audit.append((object_id, found.version if found else None))
        return found

    def full_event(self, snapshot: Snapshot) -> dict[str, Any]:
        """An event with the whole snapshot, and the next event id."""
        return full_event(snapshot, f"evt_{next(self._event_ids)}")

    def thin_event(self, snapshot: Snapshot) -> dict[str, Any]:
        """An event with the snapshot's id and version, and the next event id."""
        return thin_event(snapshot, f"evt_{next(self._event_ids)}")


class _ProviderRequest(BaseHTTPRequestHandler):
    server: ProviderAPI
    timeout = 10

    def do_GET(self) -> None:
        given = self.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, f"Bearer {self.server.token}".encode()):
            return self._reply(401, b"")
        prefix = "/v1/customers/"
        if not self.path.startswith(prefix):
            return self._reply(404, b"")
        snapshot = self.server.read(unquote(self.path.removeprefix(prefix)))
        if snapshot is None:
            return self._reply(404, b"")
        self._reply(200, json.dumps(snapshot.to_json()).encode())

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug(format, *args)


def send_event(url: str, event: Mapping[str, Any], *, timeout: float = 5.0) -> int:
    """Deliver one event with one POST, as a provider does; returns the status."""
    target = urlsplit(url)
    host, port = target.hostname or "127.0.0.1", target.port
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        body = json.dumps(event).encode()
        headers = {"content-type": "application/json"}
        conn.request("POST", target.path or "/", body, headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()
