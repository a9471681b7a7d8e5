"""Queue-based load leveling: a bounded buffer between a producer and a slower consumer.

The queue absorbs bursts so the consumer works at its own pace. Its bound turns
overload into backpressure: when the buffer is full the producer waits, instead
of memory growing with the backlog. Closing the queue lets the consumers drain
every accepted item and then stop on their own.

`AsyncWorkQueue` and `ThreadWorkQueue` use `Queue.shutdown()` on Python 3.13
and later, and a closed flag plus a sentinel with the same behaviour on
Python 3.11 and 3.12.
"""

from snippets.message_queues.queue_based_load_leveling.async_queue import (
    AsyncWorkQueue,
    consume,
    level_load,
    produce,
)
from snippets.message_queues.queue_based_load_leveling.common import Closed, Stats
from snippets.message_queues.queue_based_load_leveling.thread_queue import (
    ThreadWorkQueue,
    consume_in_thread,
    level_load_threads,
)

__all__ = [
    "AsyncWorkQueue",
    "Closed",
    "Stats",
    "ThreadWorkQueue",
    "consume",
    "consume_in_thread",
    "level_load",
    "level_load_threads",
    "produce",
]
