"""Saga steps driven by webhook callbacks, with guarded transitions.

An order saga in PostgreSQL. Starting it reserves the item with a semantic
lock and sends a ``charge`` command; the payment provider's webhook moves it to
``paid`` and sends ``ship``; the fulfilment provider's webhook completes it. A
timer cancels a saga whose payment never arrived, and a payment that succeeds
after that is refunded.

Three rules keep concurrent callbacks and timers from corrupting it:

* every state change is ``UPDATE sagas SET state = new WHERE id = ... AND
  state = expected RETURNING``, in the same transaction as the outbox row for
  the next command, so of two events racing for one saga exactly one moves it;
* every webhook's ``(provider, webhook-id)`` is claimed in an inbox table in
  that transaction, so a duplicate delivery changes nothing;
* the item carries a ``locked_by`` flag while a saga uses it, so a second saga
  on the same item fails fast instead of overselling it.

psycopg 3 for PostgreSQL; the HTTP parts reuse the standard-library helpers
of `snippets.webhook_design.async_request_reply`.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg

from snippets.webhook_design.async_request_reply import (
    MAX_BODY_BYTES,
    BackgroundServer,
    SignatureError,
    request,
    verify_headers,
)

log = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]

# --8<-- [start:schema]
SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    sku       text PRIMARY KEY,
    stock     integer NOT NULL,
    locked_by uuid                    -- semantic lock: the saga using the item
);
CREATE TABLE IF NOT EXISTS sagas (
    id         uuid PRIMARY KEY,
    sku        text NOT NULL REFERENCES items,
    quantity   integer NOT NULL,
    state      text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS timers (  -- one payment deadline per saga
    saga_id  uuid PRIMARY KEY REFERENCES sagas,
    due_at   timestamptz NOT NULL,
    fired_at timestamptz
);
CREATE TABLE IF NOT EXISTS inbox (   -- webhook ids already applied
    provider    text NOT NULL,       -- ids are unique per provider only
    webhook_id  text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, webhook_id)
);
CREATE TABLE IF NOT EXISTS outbox (  -- commands for the providers
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    saga_id      uuid  NOT NULL,
    command      text  NOT NULL,
    payload      jsonb NOT NULL,
    state        text  NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'sent', 'refused', 'parked')),
    attempts     integer NOT NULL DEFAULT 0,
    next_attempt timestamptz NOT NULL DEFAULT now(),
    last_error   text,
    published_at timestamptz
);
CREATE TABLE IF NOT EXISTS saga_log (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    saga_id uuid NOT NULL,
    event   text NOT NULL,
    outcome text NOT NULL
);
"""
# --8<-- [end:schema]

# --8<-- [start:relay-sql]
DUE_COMMAND = """
SELECT id, saga_id, command, payload FROM outbox o
WHERE state = 'pending' AND next_attempt <= now() AND id <> ALL(%s)
  AND NOT EXISTS (SELECT 1 FROM outbox older  -- a saga's commands in order
                  WHERE older.saga_id = o.saga_id AND older.state = 'pending'
                    AND older.id < o.id)
ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
"""
MARK_SENT = """
UPDATE outbox SET state = 'sent', attempts = attempts + 1, published_at = now()
WHERE id = %s
"""
MARK_REFUSED = """
UPDATE outbox SET state = 'refused', attempts = attempts + 1, last_error = %s
WHERE id = %s
"""
MARK_FAILED = """
UPDATE outbox SET attempts = attempts + 1, last_error = %s,
    next_attempt = now() + make_interval(secs => %s * 2 ^ attempts),
    state = CASE WHEN attempts + 1 >= %s THEN 'parked' ELSE 'pending' END
WHERE id = %s RETURNING state
"""
# --8<-- [end:relay-sql]


def create_schema(dsn: str) -> None:
    """Create the tables if they do not exist."""
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        conn.execute(SCHEMA)


# --8<-- [start:transitions]
@dataclass(frozen=True)
class Step:
    """One guarded transition and the command it sends, if any."""

    source: str
    target: str
    command: str | None = None


TRANSITIONS: dict[str, tuple[Step, ...]] = {  # per event, the first match wins
    "payment.succeeded": (
        Step("awaiting_payment", "paid", "ship"),
        Step("cancelled", "refunding", "refund"),  # too late: give it back
    ),
    "payment.failed": (Step("awaiting_payment", "cancelled"),),
    "timeout": (Step("awaiting_payment", "cancelled", "cancel_payment"),),
    "shipment.delivered": (Step("paid", "completed"),),
    "refund.succeeded": (Step("refunding", "refunded"),),
    # A provider refused a command for good (a 4xx), reported by the relay:
    "charge.refused": (Step("awaiting_payment", "cancelled"),),
    "cancel_payment.refused": (  # the charge was captured: give it back
        Step("cancelled", "refunding", "refund"),
    ),
    "refund.refused": (Step("refunding", "refund_failed"),),  # a person decides
}
OWN_EVENTS = frozenset(
    event for event in TRANSITIONS if event == "timeout" or event.endswith(".refused")
)  # raised here, never accepted from a webhook
# --8<-- [end:transitions]


class ItemLocked(Exception):
    """Another saga holds the item's semantic lock: try again later."""


class OutOfStock(Exception):
    """Not enough stock for the saga."""


class UnknownSaga(Exception):
    """A webhook names a saga that does not exist."""


class Refused(Exception):
    """The provider refused a command for good (a 4xx): do not send it again."""


@dataclass(frozen=True)
class Command:
    """A command leaving through the outbox; ``id`` doubles as idempotency key."""

    id: int
    saga_id: uuid.UUID
    command: str
    payload: dict[str, Any]


class Orchestrator:
    """Runs order sagas: starts them, applies webhooks and fires timeouts.

    Each call opens its own connection and transaction; use a pool in a
    service that handles many webhooks.

    Args:
        dsn: The PostgreSQL connection string.
    """

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def _connect(self) -> Conn:
        return psycopg.connect(self.dsn, autocommit=True)

    # --8<-- [start:start]
    def start(
        self, sku: str, quantity: int, amount: int, *, payment_timeout: float
    ) -> uuid.UUID:
        """Reserve the item, create the saga and its deadline, send ``charge``.

        Raises:
            ItemLocked: Another saga is using the item; nothing was written.
            OutOfStock: Not enough stock; nothing was written.
        """
        saga_id = uuid.uuid4()
        with self._connect() as conn, conn.transaction():
            self._reserve(conn, saga_id, sku, quantity)
            conn.execute(
                "INSERT INTO sagas (id, sku, quantity, state)"
                " VALUES (%s, %s, %s, 'awaiting_payment')",
                (saga_id, sku, quantity),
            )
            conn.execute(
                "INSERT INTO timers (saga_id, due_at)"
                " VALUES (%s, now() + make_interval(secs => %s))",
                (saga_id, payment_timeout),
            )
            self._emit(conn, saga_id, "charge", {"amount": amount})
            self._log(conn, saga_id, "start", "-> awaiting_payment")
        return saga_id

    # --8<-- [end:start]

    # --8<-- [start:reserve]
    def _reserve(self, conn: Conn, saga_id: uuid.UUID, sku: str, quantity: int) -> None:
        """Take the item's semantic lock, or fail fast."""
        self._checkpoint("reserve")
        taken = conn.execute(
            "UPDATE items SET locked_by = %s"
            " WHERE sku = %s AND locked_by IS NULL AND stock >= %s RETURNING sku",
            (saga_id, sku, quantity),
        ).fetchone()
        if taken is None:  # a concurrent saga may have just taken it: re-read
            row = conn.execute(
                "SELECT locked_by FROM items WHERE sku = %s", (sku,)
            ).fetchone()
            if row is None:
                raise LookupError(f"no item {sku!r}")
            raise ItemLocked(sku) if row[0] is not None else OutOfStock(sku)

    # --8<-- [end:reserve]

    # --8<-- [start:handle]
    def handle(
        self, provider: str, webhook_id: str, event: str, saga_id: uuid.UUID
    ) -> str:
        """Apply one webhook at most once and say what it did.

        Returns the saga's new state, ``no-op`` when no transition matched,
        ``duplicate`` when this provider's webhook id was applied before
        (another provider may use the same id), or ``ignored``
        for an event type the saga does not know. The inbox claim, the
        transition, the outbox row and the log entry commit together, or not
        at all.

        Raises:
            UnknownSaga: No saga has this id; nothing was written.
        """
        if event not in TRANSITIONS or event in OWN_EVENTS:
            return "ignored"  # providers add event types; acknowledge them
        with self._connect() as conn, conn.transaction():
            self._checkpoint("received")
            if not self._claim(conn, provider, webhook_id):
                return "duplicate"
            return self._apply(conn, saga_id, event)

    def _claim(self, conn: Conn, provider: str, webhook_id: str) -> bool:
        claimed = conn.execute(
            "INSERT INTO inbox (provider, webhook_id) VALUES (%s, %s)"
            " ON CONFLICT DO NOTHING RETURNING 1",
            (provider, webhook_id),
        ).fetchone()
        return claimed is not None  # a concurrent copy waits here, then skips

    # --8<-- [end:handle]

    # --8<-- [start:apply]
    def _apply(self, conn: Conn, saga_id: uuid.UUID, event: str) -> str:
        """Try the event's transitions in order; record what happened."""
        for step in TRANSITIONS.get(event, ()):
            if self._transition(conn, saga_id, step.source, step.target):
                if step.command is not None:
                    self._emit(conn, saga_id, step.command, {})
                if step.target in ("cancelled", "completed"):
                    self._release(conn, saga_id, consume=step.target == "completed")
                self._log(conn, saga_id, event, f"{step.source} -> {step.target}")
                return step.target
        state = conn.execute("SELECT state FROM sagas WHERE id = %s", (saga_id,))
        row = state.fetchone()
        if row is None:
            raise UnknownSaga(str(saga_id))
        self._log(conn, saga_id, event, f"no-op (state {row[0]})")
        return "no-op"

    # --8<-- [end:apply]

    # --8<-- [start:transition]
    def _transition(
        self, conn: Conn, saga_id: uuid.UUID, source: str, target: str
    ) -> bool:
        """Move the saga from ``source`` to ``target``, if it is still there.

        Under READ COMMITTED a concurrent UPDATE of the row makes this one
        wait; PostgreSQL then re-evaluates the WHERE clause against the new
        row, so the loser of a race updates nothing.
        """
        self._checkpoint("transition")
        moved = conn.execute(
            "UPDATE sagas SET state = %s, updated_at = now()"
            " WHERE id = %s AND state = %s RETURNING id",
            (target, saga_id, source),
        ).fetchone()
        return moved is not None

    # --8<-- [end:transition]

    # --8<-- [start:release]
    def _release(self, conn: Conn, saga_id: uuid.UUID, *, consume: bool) -> None:
        """Drop the semantic lock; take the stock if the saga completed."""
        conn.execute(
            "UPDATE items SET locked_by = NULLIF(locked_by, s.id),"
            " stock = items.stock - CASE WHEN %s THEN s.quantity ELSE 0 END"
            " FROM sagas s WHERE s.id = %s AND items.sku = s.sku",
            (consume, saga_id),
        )

    # --8<-- [end:release]

    # --8<-- [start:timeouts]
    def fire_timeouts(self, limit: int = 100) -> list[tuple[uuid.UUID, str]]:
        """Compensate sagas whose payment deadline passed; one per transaction.

        The timer row is claimed with SKIP LOCKED, so several sweepers can run;
        the compensation goes through the same guarded transition as the
        webhooks, so a payment that won the race turns this into a no-op.
        """
        fired: list[tuple[uuid.UUID, str]] = []
        with self._connect() as conn:
            while len(fired) < limit:
                with conn.transaction():
                    due = conn.execute(
                        "SELECT saga_id FROM timers"
                        " WHERE fired_at IS NULL AND due_at <= now()"
                        " ORDER BY due_at LIMIT 1 FOR UPDATE SKIP LOCKED"
                    ).fetchone()
                    if due is None:
                        break
                    conn.execute(
                        "UPDATE timers SET fired_at = now() WHERE saga_id = %s", due
                    )
                    fired.append((due[0], self._apply(conn, due[0], "timeout")))
        return fired

    # --8<-- [end:timeouts]

    # --8<-- [start:relay]
    def relay(
        self,
        send: Callable[[Command], None],
        *,
        limit: int = 100,
        retry_in: float = 1.0,
        max_attempts: int = 8,
    ) -> Counter[str]:
        """Send due commands, one row per transaction; count the outcomes.

        ``sent``: the provider accepted it. ``refused``: ``send`` raised
        `Refused`; the saga gets the event ``<command>.refused``. ``retry``:
        anything else went wrong; the row is due again after ``retry_in``
        seconds, doubled per attempt. ``parked``: it failed ``max_attempts``
        times and waits for a person. A crash after ``send`` and before the
        commit sends a command again, so providers dedupe on the command id.
        """
        outcomes: Counter[str] = Counter()
        tried: list[int] = []  # each row at most once per pass
        with self._connect() as conn:
            while len(tried) < limit:
                with conn.transaction():  # the row stays locked for one send
                    row = conn.execute(DUE_COMMAND, (tried,)).fetchone()
                    if row is None:
                        break
                    command = Command(*row)
                    tried.append(command.id)
                    outcome = self._send(conn, send, command, retry_in, max_attempts)
                outcomes[outcome] += 1
        return outcomes

    # --8<-- [end:relay]

    # --8<-- [start:send-one]
    def _send(
        self,
        conn: Conn,
        send: Callable[[Command], None],
        command: Command,
        retry_in: float,
        max_attempts: int,
    ) -> str:
        try:
            send(command)
        except Refused as error:
            conn.execute(MARK_REFUSED, (str(error), command.id))
            self._apply(conn, command.saga_id, f"{command.command}.refused")
            return "refused"
        except Exception as error:  # unreachable, 5xx, 429: try again later
            log.warning("command %d not sent: %r", command.id, error)
            params = (repr(error), retry_in, max_attempts, command.id)
            (state,) = conn.execute(MARK_FAILED, params).fetchone() or ("?",)
            return "retry" if state == "pending" else "parked"
        conn.execute(MARK_SENT, (command.id,))
        return "sent"

    # --8<-- [end:send-one]

    def _emit(
        self, conn: Conn, saga_id: uuid.UUID, command: str, payload: dict[str, Any]
    ) -> None:
        conn.execute(
            "INSERT INTO outbox (saga_id, command, payload) VALUES (%s, %s, %s)",
            (saga_id, command, json.dumps(payload)),
        )

    def _log(self, conn: Conn, saga_id: uuid.UUID, event: str, outcome: str) -> None:
        conn.execute(
            "INSERT INTO saga_log (saga_id, event, outcome) VALUES (%s, %s, %s)",
            (saga_id, event, outcome),
        )

    def history(self, saga_id: uuid.UUID) -> list[tuple[str, str]]:
        """(event, outcome) for every step the saga took or refused, in order."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT event, outcome FROM saga_log WHERE saga_id = %s ORDER BY id",
                (saga_id,),
            ).fetchall()
        return [(str(event), str(outcome)) for event, outcome in rows]

    def _checkpoint(self, name: str) -> None:
        """Called at named points inside transactions; tests hold threads here."""


# --8<-- [start:naive]
class NaiveOrchestrator(Orchestrator):
    """Anti-pattern: read, decide in Python, write; no inbox; no lock."""

    def _transition(
        self, conn: Conn, saga_id: uuid.UUID, source: str, target: str
    ) -> bool:
        row = conn.execute("SELECT state FROM sagas WHERE id = %s", (saga_id,))
        state = row.fetchone()
        self._checkpoint("transition")  # another event can move the saga now
        if state is None or state[0] != source:
            return False
        conn.execute("UPDATE sagas SET state = %s WHERE id = %s", (target, saga_id))
        return True

    def _claim(self, conn: Conn, provider: str, webhook_id: str) -> bool:
        return True  # every delivery is treated as new

    def _reserve(self, conn: Conn, saga_id: uuid.UUID, sku: str, quantity: int) -> None:
        row = conn.execute("SELECT stock FROM items WHERE sku = %s", (sku,))
        stock = row.fetchone()
        self._checkpoint("reserve")  # a second saga can read the same stock
        if stock is None or stock[0] < quantity:
            raise OutOfStock(sku)


# --8<-- [end:naive]


# --------------------------------------------------------------------------- #
# The webhook endpoint
# --------------------------------------------------------------------------- #


class _WebhookHTTPServer(ThreadingHTTPServer):
    daemon_threads = False
    orchestrator: Orchestrator
    secrets: Mapping[str, str]  # provider name -> its signing secret


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
        secret = self.server.secrets.get(provider)
        if prefix != "/webhooks" or secret is None:
            return self._answer(404, "no such provider")
        try:  # the provider's own secret proves the delivery is from it
            webhook_id = verify_headers(secret, dict(self.headers.items()), body)
            event = json.loads(body)
            saga_id = uuid.UUID(str(event["saga_id"]))
            outcome = self.server.orchestrator.handle(
                provider, webhook_id, str(event["type"]), saga_id
            )
        except SignatureError:
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
        httpd.secrets = dict(secrets)
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
