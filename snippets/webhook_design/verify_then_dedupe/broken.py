"""The two mistakes the page starts from: verifying re-encoded bytes, and a
replay guard that looks before it records. Kept to reproduce them; do not copy.
"""

from __future__ import annotations

import json
from contextlib import closing

from snippets.webhook_design.verify_then_dedupe.store import DeliveryStore, Effect
from snippets.webhook_design.verify_then_dedupe.verifier import Delivery

__all__: list[str] = []


# --8<-- [start:reserialized]
def reserialized(raw: bytes) -> bytes:
    """What a handler that parses first ends up verifying: not the signed bytes.

    `json.dumps` adds spaces after ``,`` and ``:``, escapes non-ASCII text
    and prints ``10.50`` as ``10.5``; any one of them breaks the signature.
    """
    return json.dumps(json.loads(raw)).encode()


# --8<-- [end:reserialized]


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
