"""Poison messages: bound the redeliveries, then move the message aside.

A poison message is one whose handler fails every time (a schema the code does
not understand, a bug, data that breaks an invariant). Requeued on every
failure it comes back forever: it blocks the queue behind it or burns CPU and
log space in a loop. The cure is a bound on the attempts plus a dead-letter
queue where the message waits for a person or a replay tool.

Two implementations:

* RabbitMQ quorum queues count deliveries themselves: with ``x-delivery-limit``
  and a dead-letter exchange the broker moves the message aside (3.10+).
* Broker-neutral: count attempts in a message header, republish on failure and
  publish to a dead-letter queue after the last attempt.
"""

from snippets.message_queues.poison_messages.bounds import (
    ATTEMPTS,
    Channel,
    Handler,
    PermanentError,
    connect,
    declare_quorum_with_dead_letter,
    deliveries,
    depth,
    handle_with_counted_retries,
    handle_with_limit,
)

__all__ = [
    "ATTEMPTS",
    "Channel",
    "Handler",
    "PermanentError",
    "connect",
    "declare_quorum_with_dead_letter",
    "deliveries",
    "depth",
    "handle_with_counted_retries",
    "handle_with_limit",
]
