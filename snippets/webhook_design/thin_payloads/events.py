"""The two shapes of a ``customer.updated`` event, built from one snapshot."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Snapshot", "full_event", "thin_event"]


@dataclass(frozen=True)
class Snapshot:
    """An object's state at one version, as the provider's API returns it."""

    object_id: str
    version: int
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.object_id, "version": self.version, "data": self.data}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Snapshot:
        return cls(str(doc["id"]), int(doc["version"]), dict(doc["data"]))


# --8<-- [start:events]
def full_event(snapshot: Snapshot, event_id: str) -> dict[str, Any]:
    """An event that carries the whole object as it was at this version."""
    data = {"id": snapshot.object_id, "version": snapshot.version}
    return {
        "id": event_id,
        "type": "customer.updated",
        "data": {**data, **snapshot.data},
    }


def thin_event(snapshot: Snapshot, event_id: str) -> dict[str, Any]:
    """An event that carries a reference: which object, which version."""
    return {
        "id": event_id,
        "type": "customer.updated",
        "data": {"id": snapshot.object_id, "version": snapshot.version},
    }


# --8<-- [end:events]
