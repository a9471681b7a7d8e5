"""Child processes for the ordered-processing tests.

    python -m snippets.support.message_queues_ordered_child lane KEY
    python -m snippets.support.message_queues_ordered_child consumer URL QUEUE LOG \
        HOLD_AT LAST

``lane`` prints ``lane_for(KEY, 1024)`` and ``hash(KEY)``, to compare runs under
different ``PYTHONHASHSEED``. ``consumer`` consumes with the single-active-consumer
queue, logs ``<pid> got <seq>`` and ``<pid> applied <seq>``, stalls on event
HOLD_AT (to be killed there) and stops after event LAST.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from snippets.message_queues.ordered_processing import (
    Event,
    consume_events,
    lane_for,
)

__all__ = ["consumer", "lane"]


def lane(key: str) -> None:
    print(lane_for(key, 1024), hash(key))


def consumer(url: str, queue_name: str, log: str, hold_at: str, last: str) -> None:
    stop = threading.Event()

    def handle(event: Event) -> None:
        with open(log, "a") as out:
            out.write(f"{os.getpid()} got {event.seq}\n")
        if event.seq == int(hold_at):
            time.sleep(60)  # killed here, before applying or acking
        with open(log, "a") as out:
            out.write(f"{os.getpid()} applied {event.seq}\n")
        if event.seq == int(last):
            stop.set()

    consume_events(url, queue_name, handle, stop)


if __name__ == "__main__":
    if sys.argv[1] == "lane":
        lane(sys.argv[2])
    else:
        consumer(*sys.argv[2:7])
