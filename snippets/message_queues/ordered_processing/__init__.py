"""Ordered processing: per-key FIFO lanes, and priorities that cannot starve.

Competing consumers on one queue reorder the events of a key as soon as two
of them are in flight at once. Routing every key to one lane by a stable hash
keeps each key's events in order while different keys still run in parallel
(the sequential convoy). For priorities, a strict priority queue never serves
low-priority work while urgent work keeps arriving; aging a waiting item by
one level per interval bounds how long any item waits.
"""

from snippets.message_queues.ordered_processing.aging import AgingPriorityQueue, Closed
from snippets.message_queues.ordered_processing.lanes import (
    Event,
    Ledger,
    lane_for,
    run_partitioned,
)
from snippets.message_queues.ordered_processing.rabbitmq import (
    consume_events,
    declare_ordered_queue,
)

__all__ = [
    "AgingPriorityQueue",
    "Closed",
    "Event",
    "Ledger",
    "consume_events",
    "declare_ordered_queue",
    "lane_for",
    "run_partitioned",
]
