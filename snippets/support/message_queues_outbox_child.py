"""The writer or relay process that the transactional-outbox tests kill.

    python -m snippets.support.message_queues_outbox_child MODE DSN URL EXCHANGE

It prints ``paused`` at its crash point and waits there for SIGKILL.
"""

from __future__ import annotations

import sys
import threading

import psycopg

from snippets.message_queues.transactional_outbox import (
    Event,
    Publisher,
    RabbitPublisher,
    place_order,
    relay_once,
)
from snippets.message_queues.transactional_outbox.demo import (
    place_order_then_publish,
    publish_then_commit,
)

__all__ = ["main"]


def crash_point() -> None:
    print("paused", flush=True)
    threading.Event().wait()  # until SIGKILL


class PauseBefore:
    """The process dies before the publish."""

    def publish(self, event: Event) -> None:
        crash_point()


class PauseAfter:
    """The broker confirmed the publish, then the process dies."""

    def __init__(self, inner: Publisher) -> None:
        self.inner = inner

    def publish(self, event: Event) -> None:
        self.inner.publish(event)
        crash_point()


def main(mode: str, dsn: str, url: str, exchange: str) -> None:
    real = RabbitPublisher(url, exchange)
    with psycopg.connect(dsn, autocommit=True) as conn:
        if mode == "commit-then-publish":
            place_order_then_publish(conn, PauseBefore(), "alice", 4200)
        elif mode == "publish-then-commit":
            publish_then_commit(conn, PauseAfter(real), "alice", 4200)
        elif mode == "outbox-after-commit":
            place_order(conn, "alice", 4200)
            crash_point()
        elif mode == "outbox-before-commit":
            with conn.transaction():
                place_order(conn, "alice", 4200)
                crash_point()
        elif mode == "relay-after-publish":
            relay_once(conn, PauseAfter(real))
        else:
            raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(*sys.argv[1:5])
