"""The two broken consumers the page starts from, and the unguarded write.
Kept to reproduce the hazards; do not copy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextlib import closing
from typing import Any

from snippets.webhook_design.thin_payloads.client import ProviderClient
from snippets.webhook_design.thin_payloads.events import Snapshot
from snippets.webhook_design.thin_payloads.store import CustomerStore

__all__: list[str] = []


def overwrite(store: CustomerStore, snapshot: Snapshot) -> None:
    """The broken write: the last snapshot to arrive wins, however old."""
    with closing(store.connect()) as conn:
        conn.execute(
            "INSERT INTO customers (id, version, data) VALUES (?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE"
            " SET version = excluded.version, data = excluded.data",
            (snapshot.object_id, snapshot.version, json.dumps(snapshot.data)),
        )


# --8<-- [start:full]
def apply_full_payload(store: CustomerStore, event: Mapping[str, Any]) -> None:
    """The broken consumer: write the event's snapshot as it arrives."""
    data = dict(event["data"])
    object_id, version = str(data.pop("id")), int(data.pop("version"))
    overwrite(store, Snapshot(object_id, version, data))


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
