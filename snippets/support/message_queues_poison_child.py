"""A consumer process whose handler kills it on the poison message.

    python -m snippets.support.message_queues_poison_child URL QUEUE DLQ MODE

Like an out-of-memory kill or a segfault in a native library: no exception
handler runs, nothing is logged. MODE is ``limit`` (the broker counts) or
``counted`` (attempts in a header). It prints each body it processed and exits
once the queue has been idle for half a second.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from snippets.message_queues.poison_messages import (
    connect,
    deliveries,
    handle_with_counted_retries,
    handle_with_limit,
)

__all__ = ["main"]


def handle(body: bytes) -> None:
    if body == b"poison":
        os.kill(os.getpid(), signal.SIGKILL)


def main(url: str, queue: str, dead_letter_queue: str, mode: str) -> None:
    last = time.monotonic()

    def idle() -> bool:
        return time.monotonic() - last > 0.5

    with connect(url) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        for method, props, body in deliveries(
            channel, queue, prefetch=1, until=idle, timeout=10
        ):
            if mode == "limit":
                handle_with_limit(channel, method, props, body, handle)
            else:
                handle_with_counted_retries(
                    channel,
                    method,
                    props,
                    body,
                    handle,
                    retry_queue=queue,
                    dead_letter_queue=dead_letter_queue,
                    max_attempts=3,
                )
            print(body.decode(), flush=True)
            last = time.monotonic()


if __name__ == "__main__":
    main(*sys.argv[1:5])
