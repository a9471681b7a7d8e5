"""The transition table, the commands it sends, and the errors it raises."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

__all__ = [
    "OWN_EVENTS",
    "TRANSITIONS",
    "Command",
    "ItemLocked",
    "OutOfStock",
    "Refused",
    "Step",
    "UnknownSaga",
]


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
