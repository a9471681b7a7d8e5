"""Idempotent, order-tolerant webhook consumers: dedupe plus monotonic state.

A provider delivers each event at least once and in no promised order: a
retried event can arrive after a newer event about the same object. This
module applies ``subscription.updated`` events so that the stored state ends
at the newest event's state, whatever order and however often they arrive:

* each delivery is claimed once by its ``webhook-id``, in the transaction
  that applies it (`verify_then_dedupe.DeliveryStore`);
* the state row only moves forward: the write carries the event's version,
  and its ``WHERE`` clause refuses an older or equal one in the same
  statement.

The receiver stores state in SQLite. The PostgreSQL functions show the same
statement where two transactions can race on one row.
"""

from __future__ import annotations

import json
import logging
import random
import sqlite3
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import permutations
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snippets.support import services
from snippets.support import webhook_design_subscriptions as harness
from snippets.support.cases import run_cases
from snippets.webhook_design.verify_then_dedupe import Delivery, new_secret

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "PG_SCHEMA",
    "PG_UPSERT_IF_NEWER",
    "SCHEMA",
    "STATUSES",
    "UPSERT_IF_NEWER",
    "Update",
    "apply_if_newer",
    "apply_if_newer_pg",
]

log = logging.getLogger(__name__)

STATUSES = {1: "trialing", 2: "active", 3: "past_due", 4: "canceled"}

SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions (
    id      TEXT PRIMARY KEY,
    status  TEXT NOT NULL,
    version INTEGER NOT NULL
)
"""


@dataclass(frozen=True)
class Update:
    """A ``subscription.updated`` event: the object's state at a version."""

    id: str
    status: str
    version: int

    @classmethod
    def parse(cls, delivery: Delivery) -> Update:
        """Read an update from a verified delivery.

        Raises:
            ValueError: The payload is not JSON or lacks ``data.id``,
                ``data.status`` or an integer ``data.version``.
        """
        try:
            data = delivery.payload()["data"]
            update = cls(str(data["id"]), str(data["status"]), data["version"])
        except (KeyError, TypeError) as error:
            raise ValueError(f"not a subscription update: {error!r}") from error
        if type(update.version) is not int:
            raise ValueError("data.version must be an integer")
        return update

    def body(self) -> bytes:
        """The event as the provider would send it."""
        event = {"type": "subscription.updated", "data": asdict(self)}
        return json.dumps(event, separators=(",", ":")).encode()


# --8<-- [start:last-write-wins]
def apply_last_write_wins(conn: sqlite3.Connection, delivery: Delivery) -> str:
    """The broken effect, kept for the test: the last delivery to arrive wins."""
    update = Update.parse(delivery)
    conn.execute(
        "INSERT INTO subscriptions (id, status, version) VALUES (?, ?, ?)"
        " ON CONFLICT (id) DO UPDATE"
        " SET status = excluded.status, version = excluded.version",
        (update.id, update.status, update.version),
    )
    return "applied"


# --8<-- [end:last-write-wins]


# --8<-- [start:apply-if-newer]
UPSERT_IF_NEWER = """
INSERT INTO subscriptions (id, status, version) VALUES (?, ?, ?)
ON CONFLICT (id) DO UPDATE
    SET status = excluded.status, version = excluded.version
    WHERE excluded.version > subscriptions.version
"""


def apply_if_newer(conn: sqlite3.Connection, delivery: Delivery) -> str:
    """Store the update only if it is newer than the stored state.

    Runs inside the transaction that claimed the delivery's ``webhook-id``.

    Returns:
        ``"applied"``, or ``"stale"`` when the stored version is the same or
        newer: the event is history, so it is acknowledged and dropped.
    """
    update = Update.parse(delivery)
    changed = conn.execute(
        UPSERT_IF_NEWER, (update.id, update.status, update.version)
    ).rowcount  # 0 when the WHERE clause refused the update
    if not changed:
        log.info("stale %s: %s v%d", delivery.msg_id, update.id, update.version)
        return "stale"
    return "applied"


# --8<-- [end:apply-if-newer]


# --8<-- [start:postgres]
PG_SCHEMA = SCHEMA

PG_UPSERT_IF_NEWER = UPSERT_IF_NEWER.replace("?", "%s")


def apply_if_newer_pg(conn: psycopg.Connection[Any], update: Update) -> bool:
    """The same guard on PostgreSQL; True if the update was stored.

    Call it in the transaction that claims the event. A concurrent writer of
    the same row makes this statement wait; it then re-checks the ``WHERE``
    clause against the row the other transaction committed.
    """
    cursor = conn.execute(
        PG_UPSERT_IF_NEWER, (update.id, update.status, update.version)
    )
    return cursor.rowcount == 1


def apply_checked_in_python_pg(conn: psycopg.Connection[Any], update: Update) -> bool:
    """The broken guard, kept for the test: read, compare in Python, write."""
    row = conn.execute(
        "SELECT version FROM subscriptions WHERE id = %s", (update.id,)
    ).fetchone()
    if row is not None and row[0] >= update.version:
        return False
    # Another transaction may be writing a newer version right now.
    conn.execute(
        "INSERT INTO subscriptions (id, status, version) VALUES (%s, %s, %s)"
        " ON CONFLICT (id) DO UPDATE"
        " SET status = excluded.status, version = excluded.version",
        (update.id, update.status, update.version),
    )
    return True


# --8<-- [end:postgres]


# --8<-- [start:demo]
ORDERS = list(permutations(STATUSES))  # all 24 arrival orders of v1..v4


def compare(directory: Path) -> list[str]:
    """Both effects against v2-then-v1 and against every order of v1..v4."""
    lines = [f"{'effect':<22} {'v2 then v1':<16} all {len(ORDERS)} orders of v1..v4"]
    newest = (STATUSES[4], 4)
    for effect in (apply_last_write_wins, apply_if_newer):
        with harness.consumer(directory, effect, new_secret()) as running:
            running.deliver("sub_pair", [2, 1])
            pair = harness.describe(running.state("sub_pair"))
            for number, order in enumerate(ORDERS):
                running.deliver(f"sub_{number}", order)
            wrong = sum(running.state(f"sub_{n}") != newest for n in range(len(ORDERS)))
        lines.append(f"{effect.__name__:<22} {pair:<16} wrong final state in {wrong}")
    return lines


def shuffled_with_retries(directory: Path, seed: int = 7) -> list[str]:
    """Every event twice, in a seeded random order, through the full pattern."""
    arrivals: Sequence[int] = [*STATUSES, *STATUSES]
    arrivals = random.Random(seed).sample(arrivals, k=len(arrivals))
    with harness.consumer(directory, apply_if_newer, new_secret()) as running:
        answers = Counter(running.deliver("sub_retry", arrivals))
        final = harness.describe(running.state("sub_retry"))
    counts = ", ".join(f"{answer} {answers[answer]}" for answer in sorted(answers))
    return [
        f"arrivals (seed {seed}): {' '.join(f'v{v}' for v in arrivals)}",
        f"answers: {counts}",
        f"final state: {final}",
    ]


# --8<-- [end:demo]


def show_compare() -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        return compare(Path(tmp))


def show_shuffled() -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        return shuffled_with_retries(Path(tmp))


def show_postgres() -> list[str]:
    """Both PostgreSQL writers, v4 and v3 of one subscription at once."""
    lines = []
    with services.postgres() as pg:
        for apply in (apply_checked_in_python_pg, apply_if_newer_pg):
            final, _ = harness.race_on_postgres(pg.dsn, apply)
            lines.append(
                f"{apply.__name__:<27} v4 and v3 at once: {harness.describe(final)}"
            )
    return lines


if __name__ == "__main__":
    sys.exit(
        run_cases(
            {
                "compare": show_compare,
                "shuffled": show_shuffled,
                "postgres": show_postgres,
            }
        )
    )
