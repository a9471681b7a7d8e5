"""Harness for the transactional-outbox demos and tests.

A RabbitMQ topology, a way to read every message a queue holds, the writer or
relay process that is killed at a chosen point, publishers that hold their
first publish, and the scenarios the page shows, each returning what it
observed.

This module is the one name the demo and the tests import; the code lives in

- ``message_queues_outbox_rig``: topology, queue reading, counts, relays, the
  killed child process and the publisher gate;
- ``message_queues_outbox_scenarios``: the scenarios.
"""

from __future__ import annotations

from snippets.support.message_queues_outbox_rig import (
    CHILD,
    CLAIMS,
    CRASHES,
    WAIT,
    Gate,
    Message,
    counts,
    drain,
    kill_at,
    late_events,
    relay_all,
    scalar,
    setup,
    topology,
    versions,
    write_events,
)
from snippets.support.message_queues_outbox_scenarios import (
    CrashResult,
    crash,
    many_runs,
    order_within_an_aggregate,
    race,
    relay_crash,
    unroutable,
)

__all__ = [
    "CHILD",
    "CLAIMS",
    "CRASHES",
    "WAIT",
    "CrashResult",
    "Gate",
    "Message",
    "counts",
    "crash",
    "drain",
    "kill_at",
    "late_events",
    "many_runs",
    "order_within_an_aggregate",
    "race",
    "relay_all",
    "relay_crash",
    "scalar",
    "setup",
    "topology",
    "unroutable",
    "versions",
    "write_events",
]
