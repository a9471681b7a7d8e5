"""Handling a thin event: read until the API has caught up, then store."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from snippets.webhook_design.thin_payloads.client import ProviderClient
from snippets.webhook_design.thin_payloads.events import Snapshot
from snippets.webhook_design.thin_payloads.store import CustomerStore

__all__ = ["NotYetVisible", "ThinEventConsumer"]


class NotYetVisible(Exception):
    """The API does not show the event's version yet, after every retry."""


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
