"""Harness for the ack-deadlines demos and tests.

Worker processes killed with SIGKILL between reading a message and
acknowledging it, and the scenarios the page shows, run against real Redis and
NATS JetStream servers. Each scenario returns what it observed; the demos print
it and the tests assert on it.

This module is the one name the demo and the tests import; the code lives in

- ``message_queues_ack_deadlines_workers``: the killed worker processes and the
  timings every scenario shares;
- ``message_queues_ack_deadlines_redis``: the Redis Streams scenarios;
- ``message_queues_ack_deadlines_nats``: the NATS JetStream scenarios.
"""

from __future__ import annotations

from snippets.support.message_queues_ack_deadlines_nats import (
    Jobs,
    NatsCrash,
    NatsHeartbeat,
    Run,
    nats_break,
    nats_connect,
    nats_crash,
    nats_defaults,
    nats_heartbeat,
    nats_shutdown,
    queue_state,
    work_queue,
)
from snippets.support.message_queues_ack_deadlines_redis import (
    RedisBreak,
    RedisDeadLetter,
    RedisReclaim,
    RedisRestart,
    crash_redis_worker,
    delivery,
    redis_break,
    redis_client,
    redis_dead_letter,
    redis_reclaim,
    redis_restart,
)
from snippets.support.message_queues_ack_deadlines_workers import (
    ACK_WAIT,
    CHILD,
    DURABLE,
    GROUP,
    HEARTBEAT_EVERY,
    JOB_SECONDS,
    LONG_ACK_WAIT,
    kill_hard,
    spawn_worker,
    wait_for_line,
)

__all__ = [
    "ACK_WAIT",
    "CHILD",
    "DURABLE",
    "GROUP",
    "HEARTBEAT_EVERY",
    "JOB_SECONDS",
    "LONG_ACK_WAIT",
    "Jobs",
    "NatsCrash",
    "NatsHeartbeat",
    "RedisBreak",
    "RedisDeadLetter",
    "RedisReclaim",
    "RedisRestart",
    "Run",
    "crash_redis_worker",
    "delivery",
    "kill_hard",
    "nats_break",
    "nats_connect",
    "nats_crash",
    "nats_defaults",
    "nats_heartbeat",
    "nats_shutdown",
    "queue_state",
    "redis_break",
    "redis_client",
    "redis_dead_letter",
    "redis_reclaim",
    "redis_restart",
    "spawn_worker",
    "wait_for_line",
    "work_queue",
]
