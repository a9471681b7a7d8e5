"""The consumer process that the idempotent-consumer tests kill.

    python -m snippets.support.message_queues_inbox_child MODE HANDLER DSN URL QUEUE

It runs the pattern's ``consume`` loop and prints ``paused`` at its crash point:
``after-commit`` (the effect is committed, the ack never leaves) or
``before-commit`` (the handler ran, its transaction is still open). Then it
waits for SIGKILL.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, NoReturn

import pika
import psycopg
from pika.adapters.blocking_connection import BlockingChannel

from snippets.message_queues.idempotent_consumer import (
    Conn,
    Credit,
    Handler,
    consume,
    credit_once,
)
from snippets.message_queues.idempotent_consumer.demo import (
    credit_without_dedupe,
    mark_in_separate_store,
)

__all__ = ["main"]


def crash_point(*args: Any, **kwargs: Any) -> NoReturn:
    print("paused", flush=True)
    threading.Event().wait()  # until SIGKILL
    raise SystemExit(1)


def main(mode: str, name: str, dsn: str, url: str, queue: str) -> None:
    with (
        psycopg.connect(dsn, autocommit=True) as conn,
        psycopg.connect(dsn, autocommit=True) as marker,
    ):
        handler: Handler = {
            "credit_without_dedupe": credit_without_dedupe,
            "credit_once": credit_once,
            "mark_in_separate_store": mark_in_separate_store(marker),
        }[name]
        if mode == "after-commit":
            BlockingChannel.basic_ack = crash_point
        else:
            inner = handler

            def paused(conn: Conn, consumer: str, credit: Credit) -> bool:
                inner(conn, consumer, credit)
                crash_point()

            handler = paused
        channel = pika.BlockingConnection(pika.URLParameters(url)).channel()
        channel.basic_qos(prefetch_count=1)
        consume(channel, queue, conn, handler, "billing", threading.Event())


if __name__ == "__main__":
    main(*sys.argv[1:6])
