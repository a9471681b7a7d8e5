"""Graceful shutdown: on SIGTERM, stop intake, drain in-flight work, exit in time.

Kubernetes and ``docker stop`` ask a container to stop with SIGTERM and kill
what is left with SIGKILL when the grace period ends. A process that does
nothing special dies at the SIGTERM with its requests half done. This module
shows the sequence that loses nothing in between, in three shapes:

* `serve_threaded`: a `DrainingHTTPServer` (a `ThreadingHTTPServer`) stops
  accepting, waits for its handler threads up to a deadline, and exits.
* `serve_asyncio`: the same on asyncio; requests still running at the deadline
  are cancelled and answered ``503`` instead of being cut off.
* `run_pool`: a `WorkerPool` stops taking jobs, finishes the ones it holds and
  hands back the ones it cannot finish in time.

The package is also the demo service the tests and the image run as a real
process::

    python -m snippets.container_orchestration.graceful_shutdown serve --help
"""

from .asyncio_server import respond, serve_asyncio
from .dependency import call_dependency, call_dependency_async, dependency_timeout
from .pool import JobSource, LineSource, WorkerPool, run_pool
from .server import (
    DrainingHTTPServer,
    WorkHandler,
    serve_naive,
    serve_threaded,
    stop_and_drain,
)
from .signals import AsyncWork, InFlight, Log, Work, say, stop_requests

__all__ = [
    "AsyncWork",
    "DrainingHTTPServer",
    "InFlight",
    "JobSource",
    "LineSource",
    "Log",
    "Work",
    "WorkHandler",
    "WorkerPool",
    "call_dependency",
    "call_dependency_async",
    "dependency_timeout",
    "respond",
    "run_pool",
    "say",
    "serve_asyncio",
    "serve_naive",
    "serve_threaded",
    "stop_and_drain",
    "stop_requests",
]
