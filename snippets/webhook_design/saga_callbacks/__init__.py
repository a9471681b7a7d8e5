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

Commands leave through the outbox one row per transaction; a provider's 4xx
refusal becomes the saga event ``<command>.refused``. psycopg 3 for
PostgreSQL; signatures are checked as in `snippets.webhook_design.verify_then_dedupe`.
The broken orchestrator the page starts from is in ``broken.py``; the cases
the page shows are in ``demo.py``.
"""

from snippets.webhook_design.saga_callbacks.endpoint import (
    RETRYABLE,
    WebhookEndpoint,
    http_sender,
)
from snippets.webhook_design.saga_callbacks.orchestrator import Orchestrator
from snippets.webhook_design.saga_callbacks.schema import SCHEMA, create_schema
from snippets.webhook_design.saga_callbacks.transitions import (
    OWN_EVENTS,
    TRANSITIONS,
    Command,
    ItemLocked,
    OutOfStock,
    Refused,
    Step,
    UnknownSaga,
)

__all__ = [
    "OWN_EVENTS",
    "RETRYABLE",
    "SCHEMA",
    "TRANSITIONS",
    "Command",
    "ItemLocked",
    "Orchestrator",
    "OutOfStock",
    "Refused",
    "Step",
    "UnknownSaga",
    "WebhookEndpoint",
    "create_schema",
    "http_sender",
]
