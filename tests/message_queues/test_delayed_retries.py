"""Delayed retries against a real RabbitMQ: the hot loop, then the wait queues.

Without a delay a failing message is redelivered as fast as the consumer can
nack it. With wait queues (``x-message-ttl`` dead-lettering back to the work
queue) each retry waits its tier's delay, a cap parks the poison message, and a
crash between the confirmed copy and the ack duplicates instead of losing.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pika
import pytest

from snippets.message_queues import delayed_retries as dr
from snippets.message_queues.delayed_retries.demo import (
    demo_head_of_line,
    demo_rejects,
    demo_spin,
    demo_tiers,
)
from snippets.message_queues.poison_messages import connect
from snippets.support import message_queues_retries as harness
from snippets.support.message_queues_retries import DELAYS, short, topology_for
from tests.conftest import RabbitMQ

BODIES = [b"poison", b"malformed", b"flaky-2", b"good-1", b"good-2"]


@pytest.fixture
def version(rabbitmq: RabbitMQ) -> Iterator[tuple[int, ...]]:
    """The broker's version as it announced it; printed for the test record."""
    with connect(rabbitmq.url) as connection:
        raw = connection._impl.server_properties.get("version", b"0")
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    print(f"RabbitMQ {text}, pika {pika.__version__}")
    yield tuple(int(part) for part in text.split(".")[:3] if part.isdigit())


def test_nack_requeue_spins_hot_and_never_gives_up(
    rabbitmq: RabbitMQ, version: tuple[int, ...]
) -> None:
    count, took, left = demo_spin(rabbitmq.url, rabbitmq.name("spin"), times=50)
    print(f"50 deliveries in {took:.2f} s ({count / took:.0f} a second)")
    assert count == 50
    assert took < 5  # no delay between attempts: 0.2-1.3 s seen on 2 cores
    assert left == 1  # and no end: the message is still there


def test_tiers_delay_each_retry_and_park_the_poison_message(
    rabbitmq: RabbitMQ, version: tuple[int, ...]
) -> None:
    topology = topology_for(rabbitmq, "orders")
    outcome = demo_tiers(rabbitmq.url, topology, BODIES, max_retries=4)
    poison = outcome.of("poison")
    assert [d.result for d in poison] == [
        "retry in 0.2 s", "retry in 0.5 s", "retry in 1 s", "retry in 1 s", "parked",
    ]  # fmt: skip
    gaps = [b.at - a.at for a, b in itertools.pairwise(poison)]
    print("gaps between poison deliveries:", [round(g, 3) for g in gaps])
    for gap, delay in zip(gaps, (*DELAYS, DELAYS[-1]), strict=True):
        assert gap >= delay - 0.1  # held its TTL (`at` is taken after the confirm)
    assert [d.result for d in outcome.of("flaky-2")][-1] == "processed"
    assert [d.result for d in outcome.of("malformed")] == ["parked"]  # at once
    assert [d.result for d in outcome.of("good-1")] == ["processed"]
    parked = dict(outcome.parked)
    assert sorted(parked) == ["malformed", "poison"]
    assert parked["poison"][dr.RETRIES] == 4
    assert parked["poison"]["error"] == "RuntimeError: downstream rejects this payload"


def test_republished_x_death_keeps_counting_only_on_3_x(
    rabbitmq: RabbitMQ, version: tuple[int, ...]
) -> None:
    """The copy carries the x-death it arrived with; 3.10 to 3.12 and 3.13.3+
    interpret it and add to its counts. 4.0 does not interpret x-headers
    published by a client (rabbitmq-server PR 11043/11339): there the 1 s
    entry would stay at 1. That branch is from the documentation, not run."""
    topology = topology_for(rabbitmq, "orders")
    outcome = demo_tiers(rabbitmq.url, topology, [b"poison"], max_retries=4)
    deaths = {
        short(d["queue"]): d["count"] for d in dict(outcome.parked)["poison"]["x-death"]
    }
    expected = 2 if version < (4, 0) else 1
    assert deaths == {
        "orders.wait-1000ms": expected,
        "orders.wait-500ms": 1,
        "orders.wait-200ms": 1,
    }


def test_broker_dead_lettering_counts_in_x_death_and_caps(
    rabbitmq: RabbitMQ, version: tuple[int, ...]
) -> None:
    work, wait, parked = (rabbitmq.name(n) for n in ("jobs", "jobs.wait", "parked"))
    seen, messages = demo_rejects(rabbitmq.url, work, wait, parked, max_retries=3)
    assert seen == [0, 1, 2, 3]  # count of the (jobs, rejected) entry
    (body, headers), = messages  # fmt: skip
    assert body == "poison"
    entries = [(d["queue"], d["reason"], d["count"]) for d in headers["x-death"]]
    assert entries == [(wait, "expired", 3), (work, "rejected", 3)]  # newest first
    assert dr.death_count(headers, work, "expired") == 0  # pair, not queue alone


def test_per_message_expiration_waits_behind_the_head(
    rabbitmq: RabbitMQ, version: tuple[int, ...]
) -> None:
    arrivals = demo_head_of_line(
        rabbitmq.url, rabbitmq.name("work"), rabbitmq.name("wait"), per_message=True
    )
    print("per-message expiration:", [(n, round(t, 3)) for n, t in arrivals])
    assert [name for name, _ in arrivals] == ["slow", "fast"]
    assert dict(arrivals)["fast"] > 2.5  # a 0.1 s TTL, held ~3 s behind "slow"


def test_one_wait_queue_per_delay_is_not_blocked(
    rabbitmq: RabbitMQ, version: tuple[int, ...]
) -> None:
    wait = rabbitmq.name("wait")
    rabbitmq.name("wait-slow"), rabbitmq.name("wait-fast")  # deleted afterwards
    arrivals = demo_head_of_line(
        rabbitmq.url, rabbitmq.name("work"), wait, per_message=False
    )
    print("per-queue TTL:", [(n, round(t, 3)) for n, t in arrivals])
    assert [name for name, _ in arrivals] == ["fast", "slow"]
    assert dict(arrivals)["fast"] < 1.0


def test_crash_between_copy_and_ack_duplicates_not_loses(
    rabbitmq: RabbitMQ, version: tuple[int, ...]
) -> None:
    result = harness.crash_between_copy_and_ack(rabbitmq)
    assert [(d.body, d.redelivered, d.retries) for d in result.seen] == [
        ("order-7", True, 0),  # the original: never acked, so redelivered
        ("order-7", False, 1),  # the copy, out of the wait queue
    ]
    assert [d.result for d in result.seen] == ["processed", "processed"]
    assert (result.wait_depth, result.parked) == (0, 0)


def test_tiers_on_quorum_queues(rabbitmq: RabbitMQ, version: tuple[int, ...]) -> None:
    """Quorum wait queues (message TTL since 3.10) with at-least-once
    dead-lettering back to a quorum work queue: the same outcome."""
    topology = topology_for(rabbitmq, "orders")
    outcome = demo_tiers(rabbitmq.url, topology, BODIES, max_retries=4, quorum=True)
    assert [d.result for d in outcome.of("poison")][-1] == "parked"
    assert len(outcome.of("poison")) == 5
    assert [d.result for d in outcome.of("flaky-2")][-1] == "processed"
    assert sorted(dict(outcome.parked)) == ["malformed", "poison"]
