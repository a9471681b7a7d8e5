"""A consumer killed between the confirmed retry copy and the ack.

    python -m snippets.support.message_queues_retries_child URL WORK WAIT PARKING

Its handler fails, ``handle_with_retries`` publishes the copy to the wait queue
and waits for the broker's confirm; the channel's ``basic_ack`` then sends the
process SIGKILL, as an out-of-memory kill or a node failure at that instant would.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from snippets.message_queues.delayed_retries import (
    RetryTopology,
    handle_with_retries,
)
from snippets.message_queues.poison_messages import connect, deliveries

__all__ = ["main"]


class DiesOnAck:
    """The real channel, except that ``basic_ack`` kills the process."""

    def __init__(self, channel: Any) -> None:
        self._channel = channel

    def __getattr__(self, name: str) -> Any:
        return getattr(self._channel, name)

    def basic_ack(self, delivery_tag: int) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


def fail(body: bytes) -> None:
    raise ConnectionError("downstream timed out")


def main(url: str, work: str, wait: str, parking_lot: str) -> None:
    topology = RetryTopology(work=work, tiers=((0.2, wait),), parking_lot=parking_lot)
    with connect(url) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        for method, props, body in deliveries(
            channel, work, prefetch=1, until=lambda: False, timeout=10
        ):
            handle_with_retries(
                DiesOnAck(channel), method, props, body, fail, topology, max_retries=3
            )


if __name__ == "__main__":
    main(*sys.argv[1:5])
