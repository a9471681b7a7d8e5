"""Harness for the order-tolerant-consumers demos and tests.

* `consumer` runs a real verify-then-dedupe receiver on loopback whose effect
  is one of the subscription writers; `Consumer.deliver` sends signed events
  in a given order, and `Consumer.state` reads what was stored.
* `race_on_postgres` runs two transactions that write v4 and v3 of one
  subscription at the same moment on PostgreSQL, with the v3 transaction
  waiting on the row lock until v4 commits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from snippets.support.webhook_design_endpoint import post_webhook
from snippets.webhook_design import order_tolerant_consumers as pattern
from snippets.webhook_design.verify_then_dedupe import (
    DeliveryStore,
    Effect,
    Verifier,
    WebhookReceiver,
    signature_headers,
)

__all__ = ["Consumer", "consumer", "describe", "race_on_postgres"]


@dataclass
class Consumer:
    """A running receiver, and what a sender needs to reach it."""

    url: str
    store: DeliveryStore
    secret: str

    def deliver(self, object_id: str, versions: Iterable[int]) -> list[str]:
        """Send each version's event, in this order; return the answers.

        A version sent twice is the same event: same ``webhook-id``, new
        attempt timestamp, as a provider's retry.
        """
        answers = []
        for version in versions:
            update = pattern.Update(object_id, pattern.STATUSES[version], version)
            body = update.body()
            msg_id = f"evt_{object_id}_v{version}"
            headers = signature_headers([self.secret], msg_id, int(time.time()), body)
            status, text = post_webhook(self.url, headers, body)
            answers.append(text if status == 200 else f"{status} {text}")
        return answers

    def state(self, object_id: str) -> tuple[str, int] | None:
        """The stored status and version of one subscription."""
        with closing(self.store.connect()) as conn:
            row = conn.execute(
                "SELECT status, version FROM subscriptions WHERE id = ?", (object_id,)
            ).fetchone()
        return None if row is None else (row[0], row[1])


@contextmanager
def consumer(directory: Path, effect: Effect, secret: str) -> Iterator[Consumer]:
    """A receiver on loopback whose deliveries ``effect`` applies."""
    store = DeliveryStore(directory / f"{effect.__name__}.db")
    with closing(store.connect()) as conn:
        conn.execute(pattern.SCHEMA)
    with WebhookReceiver(Verifier([secret]), store, effect) as receiver:
        yield Consumer(receiver.url, store, secret)


def describe(state: tuple[str, int] | None) -> str:
    """A stored state for humans: ``"active (v2)"``, or ``"nothing"``."""
    return "nothing" if state is None else f"{state[0]} (v{state[1]})"


def wait_for_lock_wait(dsn: str, pid: int, timeout: float = 5.0) -> None:
    """Return once backend ``pid`` waits on a lock; raise after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as watcher:
        while time.monotonic() < deadline:
            row = watcher.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
            ).fetchone()
            if row is not None and row[0] == "Lock":
                return
            time.sleep(0.01)
    raise TimeoutError(f"backend {pid} never waited on a lock")


if TYPE_CHECKING:
    Apply = Callable[[psycopg.Connection[Any], pattern.Update], bool]


def race_on_postgres(dsn: str, apply: Apply) -> tuple[tuple[str, int], dict[int, bool]]:
    """v4 and v3 of one subscription, in two transactions at the same time.

    The v4 transaction writes first and holds the row lock; the v3 transaction
    reads, then blocks on the lock; v4 commits; v3 finishes and commits.
    Returns the final row and, per version, whether ``apply`` stored it.
    """
    with psycopg.connect(dsn, autocommit=True) as setup:
        setup.execute("DROP TABLE IF EXISTS subscriptions")
        setup.execute(pattern.PG_SCHEMA)
        setup.execute("INSERT INTO subscriptions VALUES ('sub_pg', 'active', 2)")
    stored: dict[int, bool] = {}
    with psycopg.connect(dsn) as newer, psycopg.connect(dsn) as older:
        stored[4] = apply(newer, pattern.Update("sub_pg", pattern.STATUSES[4], 4))

        def run_older() -> None:
            stored[3] = apply(older, pattern.Update("sub_pg", pattern.STATUSES[3], 3))
            older.commit()

        thread = threading.Thread(target=run_older)
        thread.start()
        wait_for_lock_wait(dsn, older.info.backend_pid)
        newer.commit()
        thread.join(timeout=10)
        if thread.is_alive():
            raise TimeoutError("the v3 transaction is stuck")
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT status, version FROM subscriptions WHERE id = 'sub_pg'"
        ).fetchone()
    if row is None:
        raise LookupError("sub_pg is gone")
    return (row[0], row[1]), stored
