"""The cases the poison-messages page shows.

    python -m snippets.message_queues.poison_messages.demo CASE

``handle_or_requeue`` is the handler without a bound; the ``demo_*`` functions
run one queue each against RabbitMQ and return what they observed.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from snippets.message_queues.poison_messages.bounds import (
    ATTEMPTS,
    Channel,
    Handler,
    connect,
    declare_quorum_with_dead_letter,
    deliveries,
    depth,
    handle_with_counted_retries,
    handle_with_limit,
)
from snippets.support import message_queues_poison as harness
from snippets.support import services
from snippets.support.cases import run_cases
from snippets.support.message_queues_poison import (
    GOOD,
    Outcome,
    example_handler,
    publish_all,
    read_dead_letters,
    wait_until,
)

__all__: list[str] = []

log = logging.getLogger(__name__)


# --8<-- [start:naive]
def handle_or_requeue(
    channel: Channel, method: Any, body: bytes, handle: Handler
) -> str:
    """The unbounded version: every failure goes straight back to the queue."""
    try:
        handle(body)
    except Exception:
        log.exception("handler failed; requeueing")
        channel.basic_nack(method.delivery_tag, requeue=True)
        return "requeued"
    channel.basic_ack(method.delivery_tag)
    return "processed"


# --8<-- [end:naive]


# --8<-- [start:demo-unbounded]
def demo_unbounded(
    url: str,
    queue: str,
    *,
    quorum: bool,
    max_deliveries: int = 50,
    timeout: float = 10.0,
) -> Outcome:
    """Requeue on every failure until the poison message came back N times.

    The poison message is published first, then five good ones; prefetch is 1.
    """
    outcome = Outcome()
    with connect(url) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        arguments = {"x-queue-type": "quorum"} if quorum else {}
        channel.queue_declare(queue, durable=True, arguments=arguments)
        publish_all(channel, queue, [b"poison", *GOOD])
        for method, _props, body in deliveries(
            channel,
            queue,
            prefetch=1,
            timeout=timeout,
            until=lambda: outcome.deliveries["poison"] >= max_deliveries,
        ):
            outcome.record(
                body, handle_or_requeue(channel, method, body, example_handler)
            )
        left = 1 + len(GOOD) - len(outcome.processed)
        wait_until(lambda: depth(channel, queue) == left, timeout)
        outcome.still_queued = depth(channel, queue)
    return outcome


# --8<-- [end:demo-unbounded]


# --8<-- [start:demo-limit]
def demo_delivery_limit(
    url: str,
    queue: str,
    *,
    dead_letter_exchange: str,
    dead_letter_queue: str,
    delivery_limit: int = 3,
    timeout: float = 10.0,
    nack: bool = False,
) -> Outcome:
    """A quorum queue with a delivery limit: poison, malformed and good messages.

    With ``nack=True`` the consumer requeues with ``basic.nack`` instead of
    ``basic.reject`` (which counts toward the limit on 3.x, not since 4.3).
    """
    outcome = Outcome()
    bodies = [b"poison", b"malformed", *GOOD]
    with connect(url) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        declare_quorum_with_dead_letter(
            channel,
            queue,
            dead_letter_exchange=dead_letter_exchange,
            dead_letter_queue=dead_letter_queue,
            delivery_limit=delivery_limit,
        )
        publish_all(channel, queue, bodies)

        def finished() -> bool:
            settled = len(outcome.processed) + depth(channel, dead_letter_queue)
            return settled == len(bodies)

        for method, props, body in deliveries(
            channel, queue, prefetch=1, until=finished, timeout=timeout
        ):
            if nack:
                result = handle_or_requeue(channel, method, body, example_handler)
            else:
                result = handle_with_limit(
                    channel, method, props, body, example_handler
                )
            outcome.record(body, result)
        outcome.dead_lettered = read_dead_letters(channel, dead_letter_queue)
    return outcome


# --8<-- [end:demo-limit]


# --8<-- [start:demo-counted]
def demo_counted_retries(
    url: str,
    queue: str,
    *,
    dead_letter_queue: str,
    max_attempts: int = 3,
    timeout: float = 10.0,
) -> Outcome:
    """Counted retries on a classic queue: no broker feature needed."""
    outcome = Outcome()
    bodies = [b"poison", b"malformed", *GOOD]
    with connect(url) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        for name in (queue, dead_letter_queue):
            channel.queue_declare(name, durable=True)
        publish_all(channel, queue, bodies)

        def finished() -> bool:
            settled = len(outcome.processed) + depth(channel, dead_letter_queue)
            return settled == len(bodies)

        for method, props, body in deliveries(
            channel, queue, prefetch=1, until=finished, timeout=timeout
        ):
            result = handle_with_counted_retries(
                channel,
                method,
                props,
                body,
                example_handler,
                retry_queue=queue,
                dead_letter_queue=dead_letter_queue,
                max_attempts=max_attempts,
            )
            outcome.record(body, result)
        outcome.dead_lettered = read_dead_letters(channel, dead_letter_queue)
    return outcome


# --8<-- [end:demo-counted]


def line(label: str, outcome: Outcome) -> str:
    return (
        f"{label}: poison delivered {outcome.deliveries['poison']} times, "
        f"{len(outcome.processed)} of {len(GOOD)} good processed, "
        f"{outcome.still_queued} still queued"
    )


def times(outcome: Outcome, body: str) -> str:
    count = outcome.deliveries[body]
    return f"{body}: delivered {count} time{'' if count == 1 else 's'}"


def summary(outcome: Outcome) -> list[str]:
    return [
        f"delivery order: {' '.join(outcome.order)}",
        f"good: {len(outcome.processed)} of {len(GOOD)} processed",
        times(outcome, "poison"),
        times(outcome, "malformed"),
        "dead-letter queue:",
        *(f"  {entry}" for entry in outcome.dead_lettered),
    ]


def show_unbounded() -> list[str]:
    with services.rabbitmq() as mq:
        classic = demo_unbounded(mq.url, mq.name("classic"), quorum=False)
        quorum = demo_unbounded(mq.url, mq.name("quorum"), quorum=True)
    return [line("classic queue", classic), line("quorum queue", quorum)]


def show_delivery_limit() -> list[str]:
    with services.rabbitmq() as mq:
        outcome = demo_delivery_limit(
            mq.url,
            mq.name("orders"),
            dead_letter_exchange=mq.name("orders.dlx"),
            dead_letter_queue=mq.name("orders.dlq"),
            delivery_limit=3,
        )
    return summary(outcome)


def show_counted() -> list[str]:
    with services.rabbitmq() as mq:
        outcome = demo_counted_retries(
            mq.url,
            mq.name("orders"),
            dead_letter_queue=mq.name("orders.dlq"),
            max_attempts=3,
        )
    return summary(outcome)


def show_crash_limit() -> list[str]:
    with services.rabbitmq() as mq:
        killed, processed, dead = harness.crash_limit(mq)
    return [
        f"consumers killed by the poison message: {killed}",
        f"then processed: {' '.join(processed)}",
        f"dead-letter queue: {' '.join(dead)}",
    ]


def show_crash_counted() -> list[str]:
    with services.rabbitmq() as mq:
        result = harness.crash_counted(mq)
    return [
        f"consumers killed by the poison message: {result.killed} (stopped trying)",
        f"first in the queue: {result.first.decode()}, "
        f"{ATTEMPTS} header: {result.headers.get(ATTEMPTS, 'missing')}",
        f"still queued: {result.left}, dead-lettered: {result.dead}",
    ]


if __name__ == "__main__":
    sys.exit(
        run_cases(
            {
                "unbounded": show_unbounded,
                "delivery_limit": show_delivery_limit,
                "counted": show_counted,
                "crash_limit": show_crash_limit,
                "crash_counted": show_crash_counted,
            }
        )
    )
