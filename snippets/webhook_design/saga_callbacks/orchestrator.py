"""The orchestrator: starts sagas, applies webhooks, fires timeouts, sends
commands; every state change is a guarded transition."""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import psycopg

from snippets.webhook_design.saga_callbacks.schema import (
    DUE_COMMAND,
    MARK_FAILED,
    MARK_REFUSED,
    MARK_SENT,
)
from snippets.webhook_design.saga_callbacks.transitions import (
    OWN_EVENTS,
    TRANSITIONS,
    Command,
    ItemLocked,
    OutOfStock,
    Refused,
    UnknownSaga,
)

__all__ = ["Conn", "Orchestrator"]

log = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]


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
