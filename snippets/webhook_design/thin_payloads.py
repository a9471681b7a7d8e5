"""Thin payloads (claim check): the event names the object, you fetch its state.

A full-payload webhook carries a snapshot of the object taken when the event was
created. Deliveries overtake each other, so an older snapshot can arrive last
and roll your copy back. A thin event carries only the object's id and version;
the receiver reads the current state from the provider's API and stores it only
if it is newer than what it has.

* `ProviderAPI` plays the provider: versioned objects behind
  `GET /v1/customers/{id}`, read through a replica that can lag behind writes,
  and events in both shapes.
* `ThinEventConsumer` handles a thin event: read until the API shows at least
  the event's version, with a bounded backoff, then store with a version guard.
* `CustomerStore` is the receiver's local copy in SQLite.
* `EventReceiver` is the webhook endpoint; it answers 503 when the object is
  not readable yet, so the provider delivers the event again later.

Run ``python -m snippets.webhook_design.thin_payloads`` to see both hazards and
the fix.
"""

from __future__ import annotations

import functools
import hmac
import http.client
import itertools
import json
import logging
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
DEMO_TOKEN = "demo-read-token"

Server = TypeVar("Server", bound=ThreadingHTTPServer)


@dataclass(frozen=True)
class Snapshot:
    """An object's state at one version, as the provider's API returns it."""

    object_id: str
    version: int
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.object_id, "version": self.version, "data": self.data}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Snapshot:
        return cls(str(doc["id"]), int(doc["version"]), dict(doc["data"]))


# --------------------------------------------------------------------------- #
# The provider: an API with a lagging read replica, and its events
# --------------------------------------------------------------------------- #


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

    # --8<-- [start:events]
    def full_event(self, snapshot: Snapshot) -> dict[str, Any]:
        """An event that carries the whole object as it was at this version."""
        data = {"id": snapshot.object_id, "version": snapshot.version}
        return {
            "id": f"evt_{next(self._event_ids)}",
            "type": "customer.updated",
            "data": {**data, **snapshot.data},
        }

    def thin_event(self, snapshot: Snapshot) -> dict[str, Any]:
        """An event that carries a reference: which object, which version."""
        return {
            "id": f"evt_{next(self._event_ids)}",
            "type": "customer.updated",
            "data": {"id": snapshot.object_id, "version": snapshot.version},
        }

    # --8<-- [end:events]


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


# --------------------------------------------------------------------------- #
# The receiver: a local copy, a client for the provider's API, the consumer
# --------------------------------------------------------------------------- #


class ProviderError(Exception):
    """The provider's API answered something other than 200 or 404."""


class NotYetVisible(Exception):
    """The API does not show the event's version yet, after every retry."""


# --8<-- [start:client]
class ProviderClient:
    """Reads objects from the provider's API with the receiver's own token.

    Args:
        base_url: The API's address, for example ``https://api.example.com``.
        token: A read-only credential for the API.
        timeout: Seconds for each socket operation of a request.
    """

    def __init__(self, base_url: str, token: str, *, timeout: float = 5.0) -> None:
        self.target = urlsplit(base_url)
        self.token, self.timeout = token, timeout

    def get(self, object_id: str) -> Snapshot | None:
        """The object as the API shows it now, or None if it answers 404."""
        host, port = self.target.hostname or "127.0.0.1", self.target.port
        conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
        try:
            conn.request(
                "GET",
                f"/v1/customers/{quote(object_id, safe='')}",
                headers={"authorization": f"Bearer {self.token}"},
            )
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        if response.status == 404:
            return None
        if response.status != 200:
            raise ProviderError(f"GET {object_id}: HTTP {response.status}")
        return Snapshot.from_json(json.loads(body))


# --8<-- [end:client]


# --8<-- [start:store]
class CustomerStore:
    """The receiver's local copy of the provider's customers, in SQLite."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        with closing(self.connect()) as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS customers ("
                " id TEXT PRIMARY KEY, version INTEGER NOT NULL, data TEXT NOT NULL)"
            )

    def connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=5, isolation_level=None)

    def apply(self, snapshot: Snapshot) -> bool:
        """Store a snapshot unless the local copy is as new. True if stored."""
        with closing(self.connect()) as conn:
            cursor = conn.execute(
                """
                INSERT INTO customers (id, version, data) VALUES (?, ?, ?)
                ON CONFLICT (id) DO UPDATE
                SET version = excluded.version, data = excluded.data
                WHERE excluded.version > customers.version
                """,
                (snapshot.object_id, snapshot.version, json.dumps(snapshot.data)),
            )
        return cursor.rowcount == 1

    # --8<-- [end:store]

    def overwrite(self, snapshot: Snapshot) -> None:
        """The broken write: the last snapshot to arrive wins, however old."""
        with closing(self.connect()) as conn:
            conn.execute(
                "INSERT INTO customers (id, version, data) VALUES (?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE"
                " SET version = excluded.version, data = excluded.data",
                (snapshot.object_id, snapshot.version, json.dumps(snapshot.data)),
            )

    def get(self, object_id: str) -> Snapshot | None:
        """The local copy of one customer, or None."""
        with closing(self.connect()) as conn:
            row = conn.execute(
                "SELECT id, version, data FROM customers WHERE id = ?", (object_id,)
            ).fetchone()
        return None if row is None else Snapshot(row[0], row[1], json.loads(row[2]))


# --8<-- [start:full]
def apply_full_payload(store: CustomerStore, event: Mapping[str, Any]) -> None:
    """The broken consumer: write the event's snapshot as it arrives."""
    data = dict(event["data"])
    object_id, version = str(data.pop("id")), int(data.pop("version"))
    store.overwrite(Snapshot(object_id, version, data))


# --8<-- [end:full]


# --8<-- [start:fetch-once]
def fetch_once(
    store: CustomerStore, client: ProviderClient, event: Mapping[str, Any]
) -> None:
    """Also broken: read the object once and trust whatever the API returned."""
    snapshot = client.get(str(event["data"]["id"]))
    if snapshot is not None:  # a 404 from a lagging replica drops the event
        store.apply(snapshot)  # an older version is stored, and the event acked


# --8<-- [end:fetch-once]


# --8<-- [start:consumer]
class ThinEventConsumer:
    """Handles thin events: fetch the named object, store it if newer.

    Args:
        store: The local copy.
        client: Reads the provider's API.
        attempts: Reads before giving up on a version the API does not show.
        backoff: Seconds before the second read; doubles up to `max_backoff`.
        max_backoff: The longest wait between two reads.
    """

    def __init__(
        self,
        store: CustomerStore,
        client: ProviderClient,
        *,
        attempts: int = 5,
        backoff: float = 0.05,
        max_backoff: float = 1.0,
    ) -> None:
        self.store, self.client = store, client
        self.attempts, self.backoff, self.max_backoff = attempts, backoff, max_backoff

    def handle(self, event: Mapping[str, Any]) -> bool:
        """Fetch the object the event names; True if the local copy changed."""
        reference = event["data"]
        object_id, version = str(reference["id"]), int(reference["version"])
        return self.store.apply(self.fetch_at_least(object_id, version))

    def fetch_at_least(self, object_id: str, version: int) -> Snapshot:
        """Read until the API shows `version` or newer; raise NotYetVisible."""
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            snapshot = self.client.get(object_id)
            if snapshot is not None and snapshot.version >= version:
                return snapshot
            if attempt < self.attempts:
                time.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
        raise NotYetVisible(f"{object_id} v{version}: {self.attempts} reads")


# --8<-- [end:consumer]


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


@contextmanager
def serving(server: Server) -> Iterator[Server]:
    """Run an HTTP server in a thread; shut it down and wait for it on exit."""
    thread = threading.Thread(target=server.serve_forever, args=(0.05,))
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# --------------------------------------------------------------------------- #
# The demo
# --------------------------------------------------------------------------- #

CUSTOMER = {
    "name": "Ada Lovelace",
    "email": "ada@example.com",
    "address": {"line1": "12 St James's Square", "city": "London", "zip": "SW1Y"},
    "plan": "basic",
}


def describe(snapshot: Snapshot | None, current: Snapshot) -> str:
    """`v2 plan=pro current`, or what is wrong with the local copy."""
    if snapshot is None:
        return "missing"
    state = "current" if snapshot == current else "stale"
    return f"v{snapshot.version} plan={snapshot.data['plan']} {state}"


def out_of_order(workdir: Path) -> list[str]:
    """Two quick updates; both events are delivered, the newer one first."""
    lines = ["cus_1: v1 plan=basic, then v2 plan=pro; events arrive v2 first"]
    for shape in ("full", "thin"):
        provider = ProviderAPI(("127.0.0.1", 0), DEMO_TOKEN)
        v1 = provider.update("cus_1", **CUSTOMER)
        v2 = provider.update("cus_1", plan="pro")
        store = CustomerStore(workdir / f"order-{shape}.sqlite3")
        on_event: Callable[[dict[str, Any]], object]
        if shape == "full":
            events = [provider.full_event(v2), provider.full_event(v1)]
            on_event = functools.partial(apply_full_payload, store)
            how = "full payload, applied as it arrives"
        else:
            events = [provider.thin_event(v2), provider.thin_event(v1)]
            client = ProviderClient(provider.url, DEMO_TOKEN)
            on_event = ThinEventConsumer(store, client).handle
            how = "thin event, fetch + version guard"
        with serving(provider), serving(EventReceiver(("127.0.0.1", 0), on_event)) as r:
            for event in events:
                send_event(r.url, event)
        size = len(json.dumps(events[0]))
        local = describe(store.get("cus_1"), v2)
        lines.append(f"{how:<36} {size:>3} bytes/event  local: {local}")
    return lines


def lagging_replica(workdir: Path, *, lag: int = 2) -> list[str]:
    """Each event is delivered right after its write, before the replica has it."""
    lines = [f"replica: the first {lag} reads after each write see the state before it"]
    for way in ("once", "retry"):
        provider = ProviderAPI(("127.0.0.1", 0), DEMO_TOKEN, replica_lag=lag)
        store = CustomerStore(workdir / f"lag-{way}.sqlite3")
        client = ProviderClient(provider.url, DEMO_TOKEN)
        on_event: Callable[[dict[str, Any]], object]
        if way == "once":
            on_event = functools.partial(fetch_once, store, client)
            how = "fetch once"
        else:
            on_event = ThinEventConsumer(store, client).handle
            how = "fetch until fresh"
        reads = []
        with serving(provider), serving(EventReceiver(("127.0.0.1", 0), on_event)) as r:
            for changes in ({**CUSTOMER}, {"plan": "pro"}):
                current = provider.update("cus_2", **changes)
                seen = len(provider.audit)
                send_event(r.url, provider.thin_event(current))
                got = [f"v{v}" if v else "404" for _, v in provider.audit[seen:]]
                reads.append(
                    f"e{current.version} (v{current.version}): {' '.join(got)}"
                )
        local = describe(store.get("cus_2"), current)
        lines.append(f"{how:<18} {reads[0]:<20} {reads[1]:<19} local: {local}")
    return lines


def main() -> None:
    """Print the demo the page shows."""
    with tempfile.TemporaryDirectory() as name:
        print(*out_of_order(Path(name)), sep="\n")
        print(*lagging_replica(Path(name)), sep="\n")


if __name__ == "__main__":
    main()
