"""The receiver's local copy, written only forward: the version guard."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

from snippets.webhook_design.thin_payloads.events import Snapshot

__all__ = ["CustomerStore"]


# --8<-- [start:store]
class CustomerStore:
    """The receiver's local copy of the provider's customers, in SQLite."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        with closing(self.connect()) as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS customers ("
                " id TEXT PRIMARY KEY, version INTEGER NOT NULL, data TEXT NOT NULL)"
            )

    def connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=5, isolation_level=None)

    def apply(self, snapshot: Snapshot) -> bool:
        """Store a snapshot unless the local copy is as new. True if stored."""
        with closing(self.connect()) as conn:
            cursor = conn.execute(
                """
                INSERT INTO customers (id, version, data) VALUES (?, ?, ?)
                ON CONFLICT (id) DO UPDATE
                SET version = excluded.version, data = excluded.data
                WHERE excluded.version > customers.version
                """,
                (snapshot.object_id, snapshot.version, json.dumps(snapshot.data)),
            )
        return cursor.rowcount == 1

    # --8<-- [end:store]

    def get(self, object_id: str) -> Snapshot | None:
        """The local copy of one customer, or None."""
        with closing(self.connect()) as conn:
            row = conn.execute(
                "SELECT id, version, data FROM customers WHERE id = ?", (object_id,)
            ).fetchone()
        return None if row is None else Snapshot(row[0], row[1], json.loads(row[2]))
