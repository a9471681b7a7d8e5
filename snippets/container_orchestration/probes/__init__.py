"""Health probes that restart only what is stuck: liveness, readiness, startup.

Three endpoints, three questions, three different sources of truth:

* `/livez` asks "is this process making progress?". It reads heartbeats that
  the process's own loops (worker threads, the asyncio event loop) refresh on
  every iteration, and nothing else. It never calls a dependency, so a slow
  database cannot get the process restarted.
* `/readyz` asks "should traffic come here now?". It reads the last result of
  each `CachedCheck`: one background thread per dependency checks it on an
  interval with a timeout. A probe reads a cached value, so a thousand probes
  cost the dependency nothing and a probe never waits for it.
* `/startupz` asks "has warm-up finished?". Kubernetes holds the other two
  probes back until it answers 200 once.

`ProbeServer` answers on its own threads, so a busy or blocked request path
never delays a probe answer. `Service` wires the pieces together the way one
replica runs them.
"""

from .checks import Answer, CachedCheck, Check, CheckResult, Health, ping_check
from .heartbeat import Heartbeat, beat_from_loop, run_worker
from .server import NaiveProbes, Probes, ProbeServer, probe_handler
from .service import ProbeSettings, Service

__all__ = [
    "Answer",
    "CachedCheck",
    "Check",
    "CheckResult",
    "Health",
    "Heartbeat",
    "NaiveProbes",
    "ProbeServer",
    "ProbeSettings",
    "Probes",
    "Service",
    "beat_from_loop",
    "ping_check",
    "probe_handler",
    "run_worker",
]
