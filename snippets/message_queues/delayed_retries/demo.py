"""The cases the delayed-retries page shows.

    python -m snippets.message_queues.delayed_retries.demo CASE

Each ``demo_*`` function runs against RabbitMQ and returns what it observed.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import pika

from snippets.message_queues.delayed_retries.topology import (
    RETRIES,
    Channel,
    RetryTopology,
    death_count,
    declare_fixed_delay,
    declare_retry_topology,
    handle_with_rejects,
    handle_with_retries,
)
from snippets.message_queues.poison_messages import deliveries, depth
from snippets.support import message_queues_retries as harness
from snippets.support import services
from snippets.support.cases import run_cases
from snippets.support.message_queues_retries import (
    Delivery,
    FlakyHandler,
    Outcome,
    confirmed_channel,
    publish_all,
    short,
)

__all__: list[str] = []


# --8<-- [start:naive]
def handle_or_requeue(channel: Channel, method: Any, body: bytes, handle: Any) -> str:
    """The hot loop: every failure goes straight back to the queue."""
    try:
        handle(body)
    except Exception:
        channel.basic_nack(method.delivery_tag, requeue=True)
        return "requeued"
    channel.basic_ack(method.delivery_tag)
    return "processed"


# --8<-- [end:naive]


def demo_spin(
    url: str, queue: str, times: int = 50, timeout: float = 30.0
) -> tuple[int, float, int]:
    """Consume one poison message with prefetch 1 until it has been delivered
    ``times`` times: the deliveries, the seconds they took, and how many
    messages are still queued afterwards."""
    handler, count = FlakyHandler(), 0
    with confirmed_channel(url) as channel:
        channel.queue_declare(queue, durable=True)
        publish_all(channel, queue, [b"poison"])
        start = time.monotonic()
        for method, _props, body in deliveries(
            channel, queue, prefetch=1, timeout=timeout, until=lambda: False
        ):
            handle_or_requeue(channel, method, body, handler)
            count += 1
            if count == times:
                break
        took = time.monotonic() - start
        harness.wait_until(lambda: depth(channel, queue) == 1, 10)
        return count, took, depth(channel, queue)


# --8<-- [start:demo-tiers]
def demo_tiers(
    url: str,
    topology: RetryTopology,
    bodies: list[bytes],
    *,
    max_retries: int,
    quorum: bool = False,
    timeout: float = 20.0,
) -> Outcome:
    """Consume with retry tiers until every message is processed or parked."""
    handler, outcome = FlakyHandler(), Outcome()
    start = time.monotonic()
    with confirmed_channel(url) as channel:
        declare_retry_topology(channel, topology, quorum=quorum)
        publish_all(channel, topology.work, bodies)
        for method, props, body in deliveries(
            channel,
            topology.work,
            prefetch=1,
            timeout=timeout,
            until=lambda: outcome.settled() == len(bodies),
        ):
            retries = int((props.headers or {}).get(RETRIES, 0))
            result = handle_with_retries(
                channel, method, props, body, handler, topology,
                max_retries=max_retries,
            )  # fmt: skip
            outcome.deliveries.append(
                Delivery(body.decode(), result, bool(method.redelivered), retries,
                         time.monotonic() - start)
            )  # fmt: skip
        outcome.parked = harness.read_all(channel, topology.parking_lot)
    return outcome


# --8<-- [end:demo-tiers]


def demo_rejects(
    url: str, work: str, wait: str, parking_lot: str, *, max_retries: int
) -> tuple[list[int], list[tuple[str, dict[str, Any]]]]:
    """Fixed delay through broker dead-lettering: the x-death count per delivery."""
    handler, seen = FlakyHandler(), []
    with confirmed_channel(url) as channel:
        declare_fixed_delay(
            channel, work=work, wait=wait, parking_lot=parking_lot, delay=0.2
        )
        publish_all(channel, work, [b"poison"])
        for method, props, body in deliveries(
            channel, work, prefetch=1, timeout=10,
            until=lambda: depth(channel, parking_lot) == 1,
        ):  # fmt: skip
            seen.append(death_count(props.headers, work, "rejected"))
            handle_with_rejects(
                channel, method, props, body, handler,
                work=work, parking_lot=parking_lot, max_retries=max_retries,
            )  # fmt: skip
        return seen, harness.read_all(channel, parking_lot)


# --8<-- [start:demo-head-of-line]
def demo_head_of_line(
    url: str, work: str, wait: str, *, per_message: bool
) -> list[tuple[str, float]]:
    """``slow`` (3 s) is published before ``fast`` (0.1 s); when does each return?

    ``per_message``: one wait queue, each message with its own ``expiration``.
    Otherwise ``wait`` is a prefix: one queue per delay, with ``x-message-ttl``.
    """
    back = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": work}
    delays = {"slow": 3.0, "fast": 0.1}
    arrivals: list[tuple[str, float]] = []
    with confirmed_channel(url) as channel:
        channel.queue_declare(work, durable=True)
        for name, delay in delays.items():
            queue = wait if per_message else f"{wait}-{name}"
            ttl = {} if per_message else {"x-message-ttl": round(delay * 1000)}
            channel.queue_declare(queue, durable=True, arguments={**back, **ttl})
            expiration = str(round(delay * 1000)) if per_message else None
            properties = pika.BasicProperties(expiration=expiration)
            channel.basic_publish("", queue, name.encode(), properties)
        start = time.monotonic()
        for method, _props, body in deliveries(
            channel, work, prefetch=1, timeout=10, until=lambda: len(arrivals) == 2
        ):
            arrivals.append((body.decode(), time.monotonic() - start))
            channel.basic_ack(method.delivery_tag)
    return arrivals


# --8<-- [end:demo-head-of-line]


def show_spin() -> list[str]:
    with services.rabbitmq() as mq:
        count, took, left = demo_spin(mq.url, mq.name("spin"))
    return [
        "basic_nack(requeue=True), prefetch 1, one poison message:",
        f"  deliveries: {count}, {'in under 5 s' if took < 5 else f'in {took:.0f} s'}",
        f"  still queued when the demo stopped consuming: {left}",
    ]


def describe(outcome: Outcome, body: str) -> str:
    results = [d.result for d in outcome.of(body)]
    return f"{body}: {' -> '.join(results)}"


def show_tiers() -> list[str]:
    bodies = [b"poison", b"malformed", b"flaky-2", b"good-1", b"good-2"]
    with services.rabbitmq() as mq:
        topology = harness.topology_for(mq, "orders")
        outcome = demo_tiers(mq.url, topology, bodies, max_retries=4)
    lines = [f"tiers: {', '.join(f'{d:g} s' for d, _ in topology.tiers)}; "
             "max_retries 4"]  # fmt: skip
    lines += [describe(outcome, b.decode()) for b in sorted(bodies)]
    lines.append("parking lot:")
    for body, headers in outcome.parked:
        lines.append(f"  {body}: {RETRIES}={headers.get(RETRIES, 0)}, "
                     f"error={headers['error']!r}")  # fmt: skip
        for death in headers.get("x-death", []):
            lines.append(f"    x-death {short(death['queue'])} "
                         f"{death['reason']} count={death['count']}")  # fmt: skip
    return lines


def show_x_death() -> list[str]:
    with services.rabbitmq() as mq:
        work, wait, parked = (mq.name(n) for n in ("jobs", "jobs.wait", "jobs.parked"))
        seen, parked_messages = demo_rejects(mq.url, work, wait, parked, max_retries=3)
    lines = [f"delivery {n}: x-death count for (jobs, rejected) = {count}"
             for n, count in enumerate(seen, 1)]  # fmt: skip
    for body, headers in parked_messages:
        lines.append(f"parked: {body}; its x-death entries, most recent first:")
        for death in headers["x-death"]:
            lines.append(f"  queue={short(death['queue'])} reason={death['reason']} "
                         f"count={death['count']}")  # fmt: skip
    return lines


def show_head_of_line() -> list[str]:
    lines = []
    with services.rabbitmq() as mq:
        for per_message, label in [(True, "one wait queue, per-message expiration"),
                                   (False, "one wait queue per delay")]:  # fmt: skip
            work, wait = mq.name("work"), mq.name("wait")
            if not per_message:
                mq.name("wait-slow"), mq.name("wait-fast")  # cleaned up afterwards
            arrivals = demo_head_of_line(mq.url, work, wait, per_message=per_message)
            order = " then ".join(name for name, _ in arrivals)
            fast = dict(arrivals)["fast"]
            verdict = "blocked behind slow" if fast > 2.5 else "on time"
            lines.append(f"{label}: {order}; fast (0.1 s) back {verdict}")
    return lines


def show_crash() -> list[str]:
    with services.rabbitmq() as mq:
        result = harness.crash_between_copy_and_ack(mq)
    lines = ["consumer 1: handler failed, copy confirmed in the 0.2 s wait queue,",
             "            killed (SIGKILL) before basic_ack"]  # fmt: skip
    for n, seen in enumerate(result.seen, 1):
        how = "redelivered original" if seen.redelivered else "retry copy"
        lines.append(f"consumer 2, delivery {n}: {seen.body} ({how}, "
                     f"{RETRIES}={seen.retries}) -> {seen.result}")  # fmt: skip
    lines.append(f"handled {len(result.seen)} times: a duplicate, nothing lost")
    return lines


if __name__ == "__main__":
    sys.exit(
        run_cases(
            {
                "spin": show_spin,
                "tiers": show_tiers,
                "x-death": show_x_death,
                "head-of-line": show_head_of_line,
                "crash": show_crash,
            }
        )
    )
