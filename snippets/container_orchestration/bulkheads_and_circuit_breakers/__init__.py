"""Bulkheads and circuit breakers: keep one bad dependency from sinking the rest.

A service that calls several dependencies shares its capacity between them:
worker threads, connections, an event loop's concurrency limit. Two tools keep
a slow or failing dependency inside its own compartment:

* `Bulkhead` (threads) and `AsyncBulkhead` (asyncio) cap the calls in flight
  to one dependency. A call that finds every slot taken waits a short acquire
  timeout, then fails with `BulkheadFull`, so a hanging dependency can hold
  only its own slots, never the whole pool.
* `CircuitBreaker` stops calling a dependency after consecutive failures and
  fails fast instead. After a cool-down it lets exactly one trial call through;
  that call decides whether the breaker closes again.

`http_get` and `async_http_get` are small standard-library HTTP clients with
timeouts. Run the page's cases with
``python -m snippets.container_orchestration.bulkheads_and_circuit_breakers.demo``.
"""

from .async_bulkhead import (
    AsyncBulkhead,
    AsyncGateway,
)
from .breaker import (
    DEPENDENCY_FAILURES,
    CircuitBreaker,
    CircuitOpenError,
    State,
    retry,
)
from .bulkhead import (
    Bulkhead,
    BulkheadFull,
    BulkheadGateway,
    DeadlineExceeded,
    Gateway,
)
from .clients import (
    DependencyError,
    RequestError,
    async_http_get,
    http_get,
)

__all__ = [
    "DEPENDENCY_FAILURES",
    "AsyncBulkhead",
    "AsyncGateway",
    "Bulkhead",
    "BulkheadFull",
    "BulkheadGateway",
    "CircuitBreaker",
    "CircuitOpenError",
    "DeadlineExceeded",
    "DependencyError",
    "Gateway",
    "RequestError",
    "State",
    "async_http_get",
    "http_get",
    "retry",
]
