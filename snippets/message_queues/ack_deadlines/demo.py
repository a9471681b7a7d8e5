"""The cases the crash-recovery page shows, against real Redis and NATS servers.

python -m snippets.message_queues.ack_deadlines.demo CASE
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

from snippets.support import message_queues_ack_deadlines as harness
from snippets.support import services
from snippets.support.cases import run_cases
from snippets.support.message_queues_ack_deadlines import (
    ACK_WAIT,
    HEARTBEAT_EVERY,
    JOB_SECONDS,
    LONG_ACK_WAIT,
)

__all__: list[str] = []


def show_redis_break() -> Iterator[str]:
    with services.redis() as r:
        client = harness.redis_client(r.url)
        try:
            result = harness.redis_break(client, r.key("jobs"), r.url)
        finally:
            client.close()
    yield "worker-1 read 1 entry and was killed (SIGKILL) before XACK"
    yield f"worker-2 read '>' for 1 s: {len(result.seen)} entries"
    yield (
        f"XPENDING: {result.pending} pending, owner {result.owner}, "
        f"delivered {result.delivered} time"
    )
    yield f"handled: {result.handled}"


def show_redis_restart() -> Iterator[str]:
    with services.redis() as r:
        client = harness.redis_client(r.url)
        try:
            result = harness.redis_restart(client, r.key("jobs"), r.url)
        finally:
            client.close()
    yield "worker-1 killed before XACK, restarted under the same name"
    yield (
        f"own pending entries read with id 0: {len(result.seen)}, "
        f"delivered {result.seen[0][2]} times"
    )
    yield f"handled: {result.handled}, pending: {result.pending}"


def show_redis_reclaim() -> Iterator[str]:
    with services.redis() as r:
        client = harness.redis_client(r.url)
        try:
            result = harness.redis_reclaim(
                client, r.key("jobs"), r.key("jobs-dead"), r.url
            )
        finally:
            client.close()
    yield "worker-1 killed before XACK; its name never comes back"
    yield f"reclaimer (XAUTOCLAIM, min-idle 500 ms) handled: {len(result.seen)}"
    yield f"owner {result.seen[0][1]}, delivered {result.seen[0][2]} times"
    yield f"pending: {result.pending}, dead-lettered: {result.dead_lettered}"


def show_redis_dead_letter() -> Iterator[str]:
    with services.redis() as r:
        client = harness.redis_client(r.url)
        try:
            result = harness.redis_dead_letter(
                client, r.key("jobs"), r.key("jobs-dead")
            )
        finally:
            client.close()
    yield "handler fails every time; max deliveries 3"
    yield f"attempts: {len(result.attempts)}"
    yield (
        f"dead-lettered: {result.dead_lettered}, "
        f"on delivery {result.record['dead-letter-deliveries']}"
    )
    yield f"fields kept: job={result.record['job']}"
    yield f"pending: {result.pending}"


def show_nats_defaults() -> Iterator[str]:
    with services.nats() as n:
        config = harness.nats_defaults(n.url, n.name("defaults"))
    yield f"ack_wait: {config.ack_wait} s"
    yield f"max_deliver: {config.max_deliver}"
    yield f"max_ack_pending: {config.max_ack_pending}"


def show_nats_break() -> Iterator[str]:
    with services.nats() as n:
        runs = harness.nats_break(n.url, n.name("jobs"))
    first, second = runs
    overlap = first.finished is not None and second.started < first.finished
    yield f"AckWait {ACK_WAIT} s; job {JOB_SECONDS} s; no heartbeats"
    yield f"{first.worker} started delivery {first.delivery}"
    yield (
        f"{second.worker} started delivery {second.delivery} "
        f"{'while' if overlap else 'after'} {first.worker} "
        f"{'was still working' if overlap else 'finished'}"
    )
    yield f"job runs: {len(runs)} (duplicate work)"


def show_nats_heartbeat() -> Iterator[str]:
    with services.nats() as n:
        result = harness.nats_heartbeat(n.url, n.name("jobs"))
    ack_pending, redelivered, left = result.state
    [run] = result.runs
    ran_past_ack_wait = (
        run.finished is not None and run.finished - run.started > 2 * ACK_WAIT
    )
    yield f"AckWait {ACK_WAIT} s; job {JOB_SECONDS} s; +WPI every {HEARTBEAT_EVERY} s"
    yield (
        f"{run.worker} ran delivery {run.delivery} for "
        f"{'over' if ran_past_ack_wait else 'under'} 2 x AckWait"
    )
    yield f"worker-b received: {result.received_b}"
    yield (
        f"job runs: {len(result.runs)}, redelivered: {redelivered}, "
        f"ack pending: {ack_pending}, left in stream: {left}"
    )


def show_nats_crash() -> Iterator[str]:
    with services.nats() as n:
        result = harness.nats_crash(n.url, n.name("jobs"))
    ack_pending, _, left = result.state
    [run] = result.runs
    yield f"worker-a (a process) {result.line}, +WPI every {HEARTBEAT_EVERY} s"
    yield "worker-a killed with SIGKILL mid-job: heartbeats stop"
    yield f"{run.worker} handled delivery {run.delivery} once AckWait ran out"
    yield (
        f"handled: {result.handled}, ack pending: {ack_pending}, left in stream: {left}"
    )


def show_nats_shutdown() -> Iterator[str]:
    with services.nats() as n:
        _, run = harness.nats_shutdown(n.url, n.name("jobs"))
    yield f"AckWait {LONG_ACK_WAIT} s"
    yield "worker-a cancelled mid-job (shutdown): nak without delay"
    yield f"{run.worker} got delivery {run.delivery} within 5 s"


if __name__ == "__main__":
    sys.exit(
        run_cases(
            {
                "redis-break": show_redis_break,
                "redis-restart": show_redis_restart,
                "redis-reclaim": show_redis_reclaim,
                "redis-dead-letter": show_redis_dead_letter,
                "nats-defaults": show_nats_defaults,
                "nats-break": show_nats_break,
                "nats-heartbeat": show_nats_heartbeat,
                "nats-crash": show_nats_crash,
                "nats-shutdown": show_nats_shutdown,
            }
        )
    )
