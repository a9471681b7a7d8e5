"""Thin payloads (claim check): the event names the object, you fetch its state.

A full-payload webhook carries a snapshot of the object taken when the event
was created. Deliveries overtake each other, so an older snapshot can arrive
last and roll your copy back. A thin event carries only the object's id and
version; the receiver reads the current state from the provider's API and
stores it only if it is newer than what it has.

* `thin_event` and `full_event` build the two shapes from a `Snapshot`.
* `ProviderClient` reads the provider's API with the receiver's own token.
* `ThinEventConsumer` handles a thin event: read until the API shows at least
  the event's version, with a bounded backoff, then store with a version guard.
* `CustomerStore` is the receiver's local copy in SQLite.
* `EventReceiver` is the webhook endpoint; it answers 503 when the object is
  not readable yet, so the provider delivers the event again later.

The broken consumers the page starts from are in ``broken.py``; the cases the
page shows are in ``demo.py``.
"""

from snippets.webhook_design.thin_payloads.client import ProviderClient, ProviderError
from snippets.webhook_design.thin_payloads.consumer import (
    NotYetVisible,
    ThinEventConsumer,
)
from snippets.webhook_design.thin_payloads.events import (
    Snapshot,
    full_event,
    thin_event,
)
from snippets.webhook_design.thin_payloads.receiver import MAX_BODY, EventReceiver
from snippets.webhook_design.thin_payloads.store import CustomerStore

__all__ = [
    "MAX_BODY",
    "CustomerStore",
    "EventReceiver",
    "NotYetVisible",
    "ProviderClient",
    "ProviderError",
    "Snapshot",
    "ThinEventConsumer",
    "full_event",
    "thin_event",
]
