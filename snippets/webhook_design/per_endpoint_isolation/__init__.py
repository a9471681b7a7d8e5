"""Per-endpoint isolation for webhook fan-out: lanes, bounds and breakers.

One event goes to every subscribed endpoint. If all deliveries share one queue
and one set of workers, an endpoint that hangs holds the workers, and every
other subscriber waits behind it: head-of-line blocking. Here each endpoint
gets a `Lane` of its own:

* a bounded backlog that `FanOutSender.publish` never waits for;
* at most ``max_in_flight`` requests to that endpoint at a time;
* a backoff per delivery: a failed delivery waits its own jittered delay while
  the lane sends the others;
* a `CircuitBreaker` that stops sending after repeated failures, opens at once
  when the endpoint sends ``Retry-After``, lets one probe through when the
  cooldown ends, and ignores results of requests sent before it changed state
  (each `Permit` carries the breaker's epoch).

The broken shared-queue sender is in ``broken.py``; the cases the page shows
are in ``demo.py``.
"""

from snippets.webhook_design.per_endpoint_isolation.breaker import (
    CircuitBreaker,
    Permit,
    State,
)
from snippets.webhook_design.per_endpoint_isolation.lane import (
    Delivery,
    Endpoint,
    Lane,
    LaneStats,
    ResultHook,
)
from snippets.webhook_design.per_endpoint_isolation.sender import FanOutSender

__all__ = [
    "CircuitBreaker",
    "Delivery",
    "Endpoint",
    "FanOutSender",
    "Lane",
    "LaneStats",
    "Permit",
    "ResultHook",
    "State",
]
