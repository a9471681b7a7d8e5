"""Competing consumers on RabbitMQ: manual acks after the work, bounded prefetch.

Several consumers take messages from one queue. Each one acknowledges a message
only after its work is done, on the channel the message came from, and holds at
most ``prefetch`` unacknowledged messages at a time. A consumer that dies before
it acknowledges gets its messages redelivered to the others (at-least-once
delivery), and a slow consumer cannot hoard the queue while others idle.

Run one worker process (``--help`` lists the options)::

    python -m snippets.message_queues.competing_consumers.worker --queue jobs
"""

from snippets.message_queues.competing_consumers.consumer import (
    DEFAULT_URL,
    Delivery,
    Handler,
    connect,
    declare_queue,
    publish,
    ready_count,
    run_consumer,
    work_while_serving_connection,
)

__all__ = [
    "DEFAULT_URL",
    "Delivery",
    "Handler",
    "connect",
    "declare_queue",
    "publish",
    "ready_count",
    "run_consumer",
    "work_while_serving_connection",
]
