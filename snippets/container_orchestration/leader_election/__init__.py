"""Lease-based leader election with fencing tokens, on PostgreSQL.

One row per lease holds the holder, a fencing token that grows by one on every
acquisition, and an expiry time computed by the database clock (``now()``), so
replicas never compare their own clocks with each other. The leader renews the
lease well before it expires and steps down when it cannot renew in time.

A lease alone cannot stop a leader that was paused (GC, SIGSTOP, a frozen VM)
and resumes after another replica took over. So every write the leader makes
carries its token, and the protected table refuses any token lower than the
highest it has accepted, in the same statement that makes the write.

On Kubernetes the lease is a ``coordination.k8s.io/v1`` Lease object;
``timing_problems`` checks an elector's timing against the renewal loops of
client-go and of the official Python client.
"""

from .elector import JITTER, LeaderElector, Timing
from .fencing import FENCED_WRITE, fenced_write, unfenced_write
from .kubernetes_timing import leads_for, timing_problems
from .lease import (
    ACQUIRE,
    RENEW,
    SCHEMA,
    Conn,
    Lease,
    connect,
    create_schema,
    release,
    renew,
    try_acquire,
)

__all__ = [
    "ACQUIRE",
    "FENCED_WRITE",
    "JITTER",
    "RENEW",
    "SCHEMA",
    "Conn",
    "LeaderElector",
    "Lease",
    "Timing",
    "connect",
    "create_schema",
    "fenced_write",
    "leads_for",
    "release",
    "renew",
    "timing_problems",
    "try_acquire",
    "unfenced_write",
]
