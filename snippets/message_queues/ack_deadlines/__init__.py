"""Crash recovery and ack deadlines on Redis Streams and NATS JetStream.

A consumer that dies between reading a message and acknowledging it leaves the
message with the broker as "delivered, not acknowledged". What happens next is
up to the broker and to you:

* Redis Streams keeps the entry in the consumer group's Pending Entries List
  (PEL) for ever. Nobody reading new entries (`>`) sees it again. `consume`
  acks only after the handler returns and, on start, drains its own pending
  entries first; `reclaim_idle` moves entries idle longer than a threshold to a
  live consumer with `XAUTOCLAIM` and dead-letters those delivered too often.
* NATS JetStream redelivers a message when its `AckWait` expires, also while
  a slow but healthy worker is still on it. `with_heartbeats` sends `+WPI`
  progress acks during a long job so the deadline only fires when the worker
  is really gone; `work_loop` acks after success and naks on failure.

The Redis functions need a client made with ``decode_responses=True`` and a
``socket_timeout`` longer than the blocking read.
"""

from snippets.message_queues.ack_deadlines.nats_jetstream import (
    MAX_DELIVERIES,
    Job,
    PermanentError,
    create_work_queue,
    dead_letter_on_max_deliveries,
    handle_without_heartbeats,
    nak_delay,
    with_heartbeats,
    work_loop,
)
from snippets.message_queues.ack_deadlines.redis_streams import (
    Fields,
    Handler,
    ReclaimResult,
    consume,
    ensure_group,
    reclaim_idle,
    run_reclaimer,
)

__all__ = [
    "MAX_DELIVERIES",
    "Fields",
    "Handler",
    "Job",
    "PermanentError",
    "ReclaimResult",
    "consume",
    "create_work_queue",
    "dead_letter_on_max_deliveries",
    "ensure_group",
    "handle_without_heartbeats",
    "nak_delay",
    "reclaim_idle",
    "run_reclaimer",
    "with_heartbeats",
    "work_loop",
]
