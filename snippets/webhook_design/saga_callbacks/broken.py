"""The orchestrator as it is often first written, for the page's "see it
break" cases."""

from __future__ import annotations

import uuid

from snippets.webhook_design.saga_callbacks.orchestrator import Conn, Orchestrator
from snippets.webhook_design.saga_callbacks.transitions import OutOfStock

__all__ = ["NaiveOrchestrator"]


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
