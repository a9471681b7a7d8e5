"""The cases the transactional-outbox page shows.

    python -m snippets.message_queues.transactional_outbox.demo CASE

Each case runs against PostgreSQL and RabbitMQ with names of its own. The
dual-write functions here are the anti-patterns the page starts from.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable

from snippets.message_queues.transactional_outbox import (
    Conn,
    Event,
    Publisher,
    insert_order,
)
from snippets.support import message_queues_outbox as harness
from snippets.support import services
from snippets.support.cases import Case, run_cases

__all__: list[str] = []


def _order_placed(order_id: int, customer: str, total_cents: int) -> Event:
    payload = {"order_id": order_id, "customer": customer, "total_cents": total_cents}
    return Event(str(uuid.uuid4()), f"order-{order_id}", "order.placed", payload)


# --8<-- [start:dual-write]
def place_order_then_publish(
    conn: Conn, publisher: Publisher, customer: str, total_cents: int
) -> int:
    """Anti-pattern: commit, then publish. A crash in between loses the event."""
    with conn.transaction():
        order_id = insert_order(conn, customer, total_cents)
    publisher.publish(_order_placed(order_id, customer, total_cents))
    return order_id


def publish_then_commit(
    conn: Conn, publisher: Publisher, customer: str, total_cents: int
) -> int:
    """Anti-pattern: publish, then commit. A crash or rollback after the publish
    leaves consumers acting on an order that does not exist."""
    with conn.transaction():
        order_id = insert_order(conn, customer, total_cents)
        publisher.publish(_order_placed(order_id, customer, total_cents))
    return order_id


# --8<-- [end:dual-write]


def show_crash(mode: str) -> list[str]:
    with services.postgres() as pg, services.rabbitmq() as mq:
        result = harness.crash(pg, mq, mode)
    return [
        f"{mode}: SIGKILL {harness.CRASHES[mode]}",
        f"orders: {result.orders}, events delivered: {result.delivered}",
    ]


def show_relay_crash() -> list[str]:
    with services.postgres() as pg, services.rabbitmq() as mq:
        pending, _, ids = harness.relay_crash(pg, mq)
    return [
        "relay: SIGKILL after the broker's confirm, before its commit",
        f"pending after the crash: {pending}",
        f"deliveries: {len(ids)}, distinct message_id: {len(set(ids))}",
    ]


def show_race(claim: str) -> list[str]:
    with services.postgres() as pg, services.rabbitmq() as mq:
        ids = harness.race(pg, mq, claim)
    return [
        f"claim {claim}: published {len(ids)}, distinct {len(set(ids))},"
        f" duplicates {len(ids) - len(set(ids))}"
    ]


def show_many_runs() -> list[str]:
    runs, aggregates, per_aggregate = 10, 20, 5
    with services.postgres() as pg, services.rabbitmq() as mq:
        messages, left = harness.many_runs(
            pg, mq, runs=runs, aggregates=aggregates, per_aggregate=per_aggregate
        )
    ids = [message_id for message_id, _, _ in messages]
    return [
        f"runs: {runs}, relays at once: 2,"
        f" events per run: {aggregates * per_aggregate}",
        f"published: {len(ids)}, distinct: {len(set(ids))}, left pending: {left[-1]}",
        "events behind a later event of their aggregate: "
        f"{harness.late_events(messages)}",
    ]


def show_order(claim: str) -> list[str]:
    with services.postgres() as pg, services.rabbitmq() as mq:
        by_b, messages = harness.order_within_an_aggregate(pg, mq, claim)
    order = [int(payload["seq"]) for _, _, payload in messages]
    return [
        f"claim {claim}: relay B published {by_b} while relay A held its batch",
        f"order seen by the consumer: {' '.join(map(str, order))}",
        "events behind a later event of their aggregate: "
        f"{harness.late_events(messages)}",
    ]


def show_unroutable(mandatory: bool) -> list[str]:
    with services.postgres() as pg, services.rabbitmq() as mq:
        published, attempts, pending = harness.unroutable(pg, mq, mandatory)
    outcome = "published" if published else "returned by the broker"
    return [
        f"mandatory={mandatory}: {outcome}, failed attempts: {attempts},"
        f" left pending: {pending}"
    ]


def _cases() -> dict[str, Case]:
    def bind(show: Callable[..., list[str]], *args: object) -> Case:
        return lambda: show(*args)

    cases: dict[str, Case] = {
        "relay-crash": show_relay_crash,
        "many-runs": show_many_runs,
    }
    for mode in (
        "commit-then-publish",
        "publish-then-commit",
        "outbox-after-commit",
        "outbox-before-commit",
    ):
        cases[f"crash-{mode}"] = bind(show_crash, mode)
    for claim in ("unlocked", "skip-locked", "in-order"):
        cases[f"race-{claim}"] = bind(show_race, claim)
    for claim in ("skip-locked", "in-order"):
        cases[f"order-{claim}"] = bind(show_order, claim)
    for mandatory in (False, True):
        cases[f"unroutable-{mandatory}"] = bind(show_unroutable, mandatory)
    return cases


if __name__ == "__main__":
    sys.exit(run_cases(_cases()))
