"""Sender-side webhook retries: exponential backoff, full jitter, Retry-After.

A sender that retries every failed delivery on the same fixed schedule sends
all of them again at the same instants. After an outage, the receiver that has
just come back gets the whole backlog in one second. This package keeps a
ledger of deliveries in SQLite and schedules each retry at a random point
below that attempt's ceiling ("full jitter"), never earlier than the
receiver's ``Retry-After`` asks.

* `RetryPolicy` turns an attempt number into a delay.
* `parse_retry_after` reads both forms of the ``Retry-After`` header.
* `classify` decides between delivered, retry, rejected and gone: every
  non-2xx but 410 is retried unless you declare its status permanent.
* `post` makes one attempt; `RetryDispatcher` stores deliveries and sends the
  ones that are due, leasing each attempt in the ledger first, so several
  dispatchers can share it.
* `Clock` is how the dispatcher reads time and waits; `SystemClock` is real.

The cases the page shows are in ``demo.py``.
"""

from snippets.webhook_design.retry_schedule.attempt import Response, post
from snippets.webhook_design.retry_schedule.clock import Clock, SystemClock
from snippets.webhook_design.retry_schedule.dispatcher import (
    SCHEMA,
    Claim,
    RetryDispatcher,
)
from snippets.webhook_design.retry_schedule.policy import (
    STANDARD_WEBHOOKS_SCHEDULE,
    Outcome,
    RetryPolicy,
    classify,
    parse_retry_after,
)

__all__ = [
    "SCHEMA",
    "STANDARD_WEBHOOKS_SCHEDULE",
    "Claim",
    "Clock",
    "Outcome",
    "Response",
    "RetryDispatcher",
    "RetryPolicy",
    "SystemClock",
    "classify",
    "parse_retry_after",
    "post",
]
