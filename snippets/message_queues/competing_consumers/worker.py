"""One worker process: consume a queue until SIGTERM or SIGINT.

python -m snippets.message_queues.competing_consumers.worker --queue jobs
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Sequence

from snippets.message_queues.competing_consumers.consumer import (
    DEFAULT_URL,
    Delivery,
    connect,
    declare_queue,
    run_consumer,
)

__all__: list[str] = []


def main(argv: Sequence[str] | None = None) -> int:
    """Run one worker process until SIGTERM or SIGINT.

    Each message is printed when received and when done, so a supervisor (or a
    test) can see how far the worker got.
    """
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--prefetch", type=int, default=10)
    parser.add_argument(
        "--work-seconds", type=float, default=0.0, help="simulated work per message"
    )
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
        run_consumer(connection, args.queue, work, prefetch=args.prefetch, stop=stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
