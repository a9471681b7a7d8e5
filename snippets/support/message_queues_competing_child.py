"""The worker process the competing-consumers tests kill.

    python -m snippets.support.message_queues_competing_child --queue Q [--auto-ack]

Like the pattern's worker, with ``--auto-ack`` to reproduce the hazard. It
prints ``received <body> redelivered=<flag>`` when a message arrives.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Sequence

from snippets.message_queues.competing_consumers import (
    DEFAULT_URL,
    Delivery,
    connect,
    declare_queue,
    run_consumer,
)
from snippets.message_queues.competing_consumers.demo import consume_auto_ack

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--prefetch", type=int, default=10)
    parser.add_argument("--work-seconds", type=float, default=0.0)
    parser.add_argument("--auto-ack", action="store_true")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    def work(delivery: Delivery) -> None:
        name = delivery.body.decode()
        print(f"received {name} redelivered={delivery.redelivered}", flush=True)
        time.sleep(args.work_seconds)
        print(f"done {name}", flush=True)

    with connect(args.url) as connection:
        with connection.channel() as channel:
            declare_queue(channel, args.queue)
        if args.auto_ack:
            consume_auto_ack(connection, args.queue, work, stop=stop)
        else:
            run_consumer(
                connection, args.queue, work, prefetch=args.prefetch, stop=stop
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
