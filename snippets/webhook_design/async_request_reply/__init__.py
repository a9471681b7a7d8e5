"""Asynchronous request-reply: 202 Accepted, a status resource, an idempotency key.

A client starts long-running work with ``POST /jobs`` and learns the outcome
later, from a signed callback or by polling. Both sides are real HTTP servers
on threads, and both keep their state in SQLite.

The server (`JobService` behind `JobServer`):

* answers ``202 Accepted`` with ``Location: /status/{id}`` and ``Retry-After``;
* stores the ``Idempotency-Key`` with the job before any work starts, so a
  repeated POST gets the existing status resource, and the same key with a
  different body gets ``422``;
* claims each job with a lease it renews, so several server processes can
  share the database without running each other's live jobs;
* answers ``303 See Other`` from the status resource once the job succeeded,
  and cancels on ``DELETE``;
* commits the callback it owes with the job's result, in an outbox table that
  `CallbackRelay` delivers, signed the Standard Webhooks way, with retries.

The client (`JobClient` with `CallbackReceiver`) writes the key down before it
sends the request, so a callback that arrives before the ``202`` finds its
row; it polls with ``Retry-After`` when no callback comes.

Standard library only; signatures come from
`snippets.webhook_design.verify_then_dedupe`. The broken clients the page
starts from are in ``broken.py``; the cases the page shows in ``demo.py``.
"""

from snippets.webhook_design.async_request_reply.callbacks import CallbackRelay
from snippets.webhook_design.async_request_reply.client import (
    CLIENT_SCHEMA,
    CallbackReceiver,
    Cancelled,
    JobClient,
    SubmitError,
)
from snippets.webhook_design.async_request_reply.jobs import (
    FINAL_STATES,
    MAX_KEY_LENGTH,
    SERVER_SCHEMA,
    Accepted,
    JobStatus,
    RequestError,
    Work,
    parse_key,
)
from snippets.webhook_design.async_request_reply.server import JobServer
from snippets.webhook_design.async_request_reply.service import JobService
from snippets.webhook_design.async_request_reply.transport import (
    MAX_BODY_BYTES,
    BackgroundServer,
    Response,
    request,
    retry_after,
)

__all__ = [
    "CLIENT_SCHEMA",
    "FINAL_STATES",
    "MAX_BODY_BYTES",
    "MAX_KEY_LENGTH",
    "SERVER_SCHEMA",
    "Accepted",
    "BackgroundServer",
    "CallbackReceiver",
    "CallbackRelay",
    "Cancelled",
    "JobClient",
    "JobServer",
    "JobService",
    "JobStatus",
    "RequestError",
    "Response",
    "SubmitError",
    "Work",
    "parse_key",
    "request",
    "retry_after",
]
