"""Delayed retries on RabbitMQ: wait queues, retry tiers and a parking lot.

A failed message goes to a wait queue that has no consumer. The queue's message
TTL (``x-message-ttl``) expires it, and its dead-letter exchange and routing key
send it back to the work queue. One wait queue per delay gives retry tiers; a
retry counter caps the attempts, and the last failure goes to a parking-lot
queue for a person or a replay tool.

* ``handle_with_retries``: the consumer publishes a confirmed copy to the next
  tier's wait queue (or the parking lot), then acks; it counts in its own header.
* ``handle_with_rejects``: one delay, and the broker moves the message
  (``basic.reject`` to a dead-letter exchange); the cap reads the ``x-death``
  count the broker maintains.
"""

from snippets.message_queues.delayed_retries.topology import (
    RETRIES,
    Channel,
    Handler,
    PermanentError,
    RetryTopology,
    death_count,
    declare_fixed_delay,
    declare_retry_topology,
    handle_with_rejects,
    handle_with_retries,
)

__all__ = [
    "RETRIES",
    "Channel",
    "Handler",
    "PermanentError",
    "RetryTopology",
    "death_count",
    "declare_fixed_delay",
    "declare_retry_topology",
    "handle_with_rejects",
    "handle_with_retries",
]
