"""Verify, then dedupe: accept each authentic, fresh webhook delivery once.

A receiver for Standard Webhooks deliveries (headers ``webhook-id``,
``webhook-timestamp`` and ``webhook-signature``) that does three things, in
this order, before it answers:

1. checks the HMAC-SHA256 signature over the raw body bytes against every
   signing secret it knows, comparing with `hmac.compare_digest`;
2. rejects a timestamp outside the tolerance, too old or too far ahead;
3. claims the ``webhook-id`` with ``INSERT ... ON CONFLICT DO NOTHING`` in the
   same SQLite transaction as the delivery's effect, so two copies that arrive
   at the same moment are applied once.

Standard library only. `signature_headers` is the sender's side, for tests and
for senders that want to speak the same scheme.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import http.client
import json
import logging
import re
import secrets
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, cast
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
TOLERANCE_SECONDS = 300.0  # what the reference libraries use, in both directions
MAX_BODY_BYTES = 1 << 20
MAX_ID_LENGTH = 256
_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # integer Unix seconds, ASCII digits only


# --8<-- [start:secret]
def parse_secret(secret: str) -> bytes:
    """Decode a signing secret: base64 with an optional ``whsec_`` prefix.

    Raises:
        ValueError: The secret is not base64, or its key is shorter than the
            24 bytes (192 bits) or longer than the 64 bytes (512 bits) that
            Standard Webhooks allows.
    """
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error as error:
        raise ValueError("the signing secret is not valid base64") from error
    if not 24 <= len(key) <= 64:
        raise ValueError(f"the signing key has {len(key)} bytes, not 24 to 64")
    return key


def new_secret() -> str:
    """A fresh random signing secret (32 bytes), in the ``whsec_`` format."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


# --8<-- [end:secret]


# --8<-- [start:sign]
def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one delivery attempt."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    mac = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def signature_headers(
    secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The headers of one attempt, signed once per secret.

    During a key rotation the sender passes the new and the old secret; the
    receiver accepts the delivery if any one signature matches a key it knows.
    """
    signatures = [sign(parse_secret(s), msg_id, timestamp, body) for s in secrets]
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signatures),
    }


# --8<-- [end:sign]


class VerificationError(Exception):
    """The delivery is not authentic or not fresh: answer 401, change nothing."""


@dataclass(frozen=True)
class Delivery:
    """A verified delivery: its id, its attempt timestamp and the signed bytes."""

    msg_id: str
    timestamp: int
    body: bytes

    def payload(self) -> Any:
        """The body parsed as JSON; parse only after verifying."""
        return json.loads(self.body)


# --8<-- [start:verifier]
class Verifier:
    """Checks Standard Webhooks signatures and timestamps.

    Args:
        secrets: Every secret that may sign a delivery; more than one while
            you rotate keys.
        tolerance: Seconds a timestamp may lie in the past or the future.
        clock: Returns the current Unix time.
    """

    def __init__(
        self,
        secrets: Iterable[str],
        *,
        tolerance: float = TOLERANCE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = [parse_secret(secret) for secret in secrets]
        if not self._keys:
            raise ValueError("at least one signing secret is required")
        self._tolerance = tolerance
        self._clock = clock

    # --8<-- [end:verifier]

    # --8<-- [start:verify]
    def verify(self, headers: Mapping[str, str], body: bytes) -> Delivery:
        """Return the delivery if it is authentic and fresh.

        Raises:
            VerificationError: A header is missing or malformed, no signature
                matches, or the timestamp is outside the tolerance.
        """
        found = {name.lower(): value for name, value in headers.items()}
        msg_id = found.get("webhook-id", "")
        stamp = found.get("webhook-timestamp", "")
        signatures = found.get("webhook-signature", "")
        if not (0 < len(msg_id) <= MAX_ID_LENGTH and _TIMESTAMP.fullmatch(stamp)):
            raise VerificationError("missing or malformed webhook headers")
        if not self._any_signature_matches(msg_id, stamp, body, signatures):
            raise VerificationError("no matching signature")
        age = self._clock() - int(stamp)  # trusted now: the timestamp is signed
        if age > self._tolerance:
            raise VerificationError("timestamp too old")
        if age < -self._tolerance:
            raise VerificationError("timestamp too new")
        return Delivery(msg_id, int(stamp), body)

    # --8<-- [end:verify]

    # --8<-- [start:compare]
    def _any_signature_matches(
        self, msg_id: str, stamp: str, body: bytes, header: str
    ) -> bool:
        received = []
        for entry in header.split():
            version, _, encoded = entry.partition(",")
            if version != "v1":  # v1a (ed25519) or a scheme this code predates
                continue
            try:
                received.append(base64.b64decode(encoded, validate=True))
            except binascii.Error:
                continue
        signed = f"{msg_id}.{stamp}.".encode() + body  # the raw bytes, unparsed
        for key in self._keys:
            expected = hmac.new(key, signed, hashlib.sha256).digest()
            for candidate in received:
                # Constant time: never `==`, which may stop at the first
                # differing byte and so tell a forger how much was right.
                if hmac.compare_digest(expected, candidate):
                    return True
        return False

    # --8<-- [end:compare]


# --8<-- [start:reserialized]
def reserialized(raw: bytes) -> bytes:
    """What a handler that parses first ends up verifying: not the signed bytes.

    `json.dumps` adds spaces after ``,`` and ``:``, escapes non-ASCII text
    and prints ``10.50`` as ``10.5``; any one of them breaks the signature.
    """
    return json.dumps(json.loads(raw)).encode()


# --8<-- [end:reserialized]


Effect = Callable[[sqlite3.Connection, Delivery], str]
"""Applies one new delivery inside the claim's transaction; returns an outcome.

Raise `ValueError` for a payload that can never be applied (it does not
parse, or lacks what the effect needs): the delivery is then parked.
"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    msg_id      TEXT PRIMARY KEY,
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS parked_deliveries (
    msg_id      TEXT PRIMARY KEY REFERENCES webhook_deliveries (msg_id),
    received_at REAL NOT NULL,
    body        BLOB NOT NULL,
    reason      TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Parked:
    """An authentic delivery that its effect could not apply, kept for a human."""

    msg_id: str
    received_at: float
    body: bytes
    reason: str


class DeliveryStore:
    """The replay guard: one SQLite row per ``webhook-id`` ever accepted.

    Args:
        path: The database file; created with the table if missing.
        busy_timeout: Seconds a writer waits for another writer's lock.
        clock: Returns the current Unix time, stored as ``received_at``.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = str(path)
        self._busy_timeout = busy_timeout
        self._clock = clock
        with closing(self.connect()) as conn:
            conn.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            conn.executescript(SCHEMA)

    def connect(self) -> sqlite3.Connection:
        """A new connection in autocommit mode; transactions are explicit."""
        return sqlite3.connect(
            self.path, timeout=self._busy_timeout, isolation_level=None
        )

    # --8<-- [start:claim]
    def accept(self, delivery: Delivery, effect: Effect) -> str:
        """Claim the delivery's id and apply its effect, in one transaction.

        Returns:
            ``"duplicate"`` if the id was claimed before; ``"parked"`` if
            ``effect`` raised `ValueError`; otherwise what ``effect`` returns.
            If ``effect`` raises anything else, the claim is rolled back with
            it, so the provider's retry is applied.
        """
        with closing(self.connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")  # one writer at a time
            try:
                claimed = conn.execute(
                    "INSERT INTO webhook_deliveries (msg_id, received_at)"
                    " VALUES (?, ?) ON CONFLICT (msg_id) DO NOTHING",
                    (delivery.msg_id, self._clock()),
                ).rowcount  # 1: this copy is first; 0: seen before
                outcome = (
                    self._apply(conn, delivery, effect) if claimed else "duplicate"
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return outcome

    # --8<-- [end:claim]

    # --8<-- [start:park]
    def _apply(
        self, conn: sqlite3.Connection, delivery: Delivery, effect: Effect
    ) -> str:
        """Run the effect; park a delivery whose payload it cannot apply."""
        conn.execute("SAVEPOINT effect")
        try:
            outcome = effect(conn, delivery)
        except ValueError as error:  # signed, so retrying sends the same bytes
            conn.execute("ROLLBACK TO effect")  # undo the effect, keep the claim
            conn.execute(
                "INSERT INTO parked_deliveries VALUES (?, ?, ?, ?)",
                (delivery.msg_id, self._clock(), delivery.body, repr(error)),
            )
            log.warning("parked delivery %s: %r", delivery.msg_id, error)
            outcome = "parked"
        conn.execute("RELEASE effect")
        return outcome

    def parked(self) -> list[Parked]:
        """Every parked delivery, oldest first: alert on them, fix, replay."""
        with closing(self.connect()) as conn:
            rows = conn.execute(
                "SELECT msg_id, received_at, body, reason FROM parked_deliveries"
                " ORDER BY received_at, msg_id"
            ).fetchall()
        return [Parked(*row) for row in rows]

    # --8<-- [end:park]

    # --8<-- [start:prune]
    def prune(self, older_than: float) -> int:
        """Forget ids received before ``older_than`` (Unix time); return how many.

        Keep ids for at least the timestamp tolerance (replays) and for the
        provider's whole retry window (retries reuse the ``webhook-id``).
        """
        with closing(self.connect()) as conn:
            return conn.execute(
                "DELETE FROM webhook_deliveries WHERE received_at < ?", (older_than,)
            ).rowcount

    # --8<-- [end:prune]


# --8<-- [start:check-then-insert]
class CheckThenInsertStore(DeliveryStore):
    """The broken replay guard, kept for the test: look, act, then record."""

    def accept(self, delivery: Delivery, effect: Effect) -> str:
        with closing(self.connect()) as conn:
            seen = conn.execute(
                "SELECT 1 FROM webhook_deliveries WHERE msg_id = ?",
                (delivery.msg_id,),
            ).fetchone()
            if seen:
                return "duplicate"
            # A copy that arrives now finds nothing either, and gets here too.
            outcome = effect(conn, delivery)
            conn.execute(
                "INSERT OR IGNORE INTO webhook_deliveries VALUES (?, ?)",
                (delivery.msg_id, self._clock()),
            )
            return outcome


# --8<-- [end:check-then-insert]


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


def post(
    url: str, headers: Mapping[str, str], body: bytes, *, timeout: float = 10.0
) -> tuple[int, str]:
    """Send one delivery attempt; return the status and the response text."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        conn.request(
            "POST",
            parts.path or "/",
            body=body,
            headers={**headers, "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


# --------------------------------------------------------------------------- #
# The demo: what the page shows
# --------------------------------------------------------------------------- #

BODY = (
    '{"type":"invoice.paid","data":{"id":"in_1","amount":10.50,"name":"Zoë"}}'.encode()
)


def record_processing(barrier: threading.Barrier) -> Effect:
    """An effect that counts its runs in ``processed``, after a meeting point.

    Every copy that reaches the effect waits at ``barrier`` so that copies
    arriving together really are inside the handler together. With the
    atomic claim only one copy gets there; it gives up waiting and goes on.
    """

    def effect(conn: sqlite3.Connection, delivery: Delivery) -> str:
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass  # the other copy never came: the claim kept it out
        conn.execute("INSERT INTO processed (msg_id) VALUES (?)", (delivery.msg_id,))
        return "accepted"

    return effect


def run_race(
    store_type: type[DeliveryStore], directory: Path, copies: int = 2
) -> tuple[int, list[str]]:
    """Send ``copies`` identical deliveries at the same moment.

    Returns:
        How many times the effect ran, and the sorted answers.
    """
    secret = new_secret()
    store = store_type(directory / f"{store_type.__name__}.db")
    with closing(store.connect()) as conn:
        conn.execute("CREATE TABLE processed (msg_id TEXT NOT NULL)")
    effect = record_processing(threading.Barrier(copies, timeout=0.5))
    headers = signature_headers([secret], "msg_race", int(time.time()), BODY)
    start = threading.Barrier(copies)
    answers: list[str] = []

    def send(url: str) -> None:
        start.wait(timeout=5)
        status, text = post(url, headers, BODY)
        answers.append(f"{status} {text}")

    with WebhookReceiver(Verifier([secret]), store, effect) as receiver:
        senders = [
            threading.Thread(target=send, args=(receiver.url,)) for _ in range(copies)
        ]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(timeout=10)
    with closing(store.connect()) as conn:
        (runs,) = conn.execute("SELECT count(*) FROM processed").fetchone()
    return runs, sorted(answers)


def race(store_type: type[DeliveryStore], directory: Path) -> str:
    """One line for the page: two copies at once, and what happened."""
    runs, answers = run_race(store_type, directory)
    times = "time" if runs == 1 else "times"
    return (
        f"{store_type.__name__:<20} processed {runs} {times:<5}"
        f"  answers: {', '.join(answers)}"
    )


def show_reserialized() -> list[str]:
    """The signed bytes next to what `reserialized` makes of them."""
    return [
        f"signed bytes : {BODY.decode()}",
        f"after json   : {reserialized(BODY).decode()}",
    ]


# --8<-- [start:demo-verify]
def verification_outcomes() -> list[str]:
    """Send a valid delivery and its broken variants; report each answer."""
    old, new, retired = new_secret(), new_secret(), new_secret()
    now = int(time.time())
    cases = [  # label, signing keys, message id, timestamp
        ("signed with the new key", [new], "msg_1", now),
        ("the same delivery again", [new], "msg_1", now),
        ("signed with the new and old keys", [new, old], "msg_2", now),
        ("signed with a retired key", [retired], "msg_3", now),
        ("body re-serialized by json", [new], "msg_4", now),
        ("timestamp 10 minutes old", [new], "msg_5", now - 600),
        ("timestamp 10 minutes ahead", [new], "msg_6", now + 600),
    ]
    lines = []
    with tempfile.TemporaryDirectory() as directory:
        store = DeliveryStore(Path(directory) / "deliveries.db")
        verifier = Verifier([new, old])  # the receiver knows both during rotation
        with WebhookReceiver(verifier, store, lambda c, d: "accepted") as receiver:
            for label, keys, msg_id, stamp in cases:
                headers = signature_headers(keys, msg_id, stamp, BODY)
                body = reserialized(BODY) if "json" in label else BODY
                status, text = post(receiver.url, headers, body)
                lines.append(f"{label:<33} {status} {text}")
    return lines


# --8<-- [end:demo-verify]


if __name__ == "__main__":
    print(*show_reserialized(), sep="\n")
    print(*verification_outcomes(), sep="\n")
    with tempfile.TemporaryDirectory() as tmp:
        print(race(CheckThenInsertStore, Path(tmp)))
        print(race(DeliveryStore, Path(tmp)))
