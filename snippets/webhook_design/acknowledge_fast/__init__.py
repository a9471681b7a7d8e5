"""Acknowledge fast, process asynchronously: a durable inbox before the 2xx.

A webhook provider waits a few seconds for your 2xx and treats anything slower
as a failed delivery. This package keeps the HTTP request short and the work
safe:

* `InboxReceiver` verifies a delivery, commits it to an SQLite `Inbox` keyed
  by its delivery id, and only then answers `202 Accepted`.
* `InboxWorker` drains the inbox in the background: it claims a delivery with
  a lease, runs your handler, and marks the delivery done. A delivery whose
  worker dies on it every time is buried after ``max_attempts`` claims.
* `deliver` is the sending side as a provider runs it: a timeout per attempt,
  and a retry after every attempt that did not end in a 2xx.
* `serve` runs a receiver and its worker until SIGTERM.

The broken receivers the page starts from are in ``broken.py``; the cases the
page shows are in ``demo.py``.
"""

from snippets.webhook_design.acknowledge_fast.inbox import (
    SCHEMA,
    Delivery,
    Handler,
    Inbox,
)
from snippets.webhook_design.acknowledge_fast.process import serve
from snippets.webhook_design.acknowledge_fast.receiver import (
    MAX_BODY,
    InboxReceiver,
    WebhookServer,
)
from snippets.webhook_design.acknowledge_fast.sender import Attempt, deliver, post
from snippets.webhook_design.acknowledge_fast.worker import InboxWorker

__all__ = [
    "MAX_BODY",
    "SCHEMA",
    "Attempt",
    "Delivery",
    "Handler",
    "Inbox",
    "InboxReceiver",
    "InboxWorker",
    "WebhookServer",
    "deliver",
    "post",
    "serve",
]
