"""Poison messages against a real RabbitMQ: the loop, then the bounds.

Without a bound a message whose handler always fails comes back forever: on a
classic queue it blocks every message behind it, on a quorum queue without a
delivery limit (3.x) it loops at the back of the queue. With a quorum-queue
delivery limit, or with attempts counted in a header, it is delivered a
bounded number of times and lands in a dead-letter queue while the good
messages are processed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pika
import pytest

from snippets.message_queues import poison_messages as pm
from snippets.message_queues.poison_messages.demo import (
    demo_counted_retries,
    demo_delivery_limit,
    demo_unbounded,
)
from snippets.support import message_queues_poison as harness
from snippets.support.message_queues_poison import GOOD, example_handler
from tests.conftest import RabbitMQ


def server_version(connection: pika.BlockingConnection) -> tuple[int, ...]:
    """The broker's version as it announced it when the connection opened."""
    properties = connection._impl.server_properties or {}
    raw = properties.get("version", b"0")
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return tuple(int(part) for part in text.split(".")[:3] if part.isdigit())


@pytest.fixture
def version(rabbitmq: RabbitMQ) -> Iterator[tuple[int, ...]]:
    with pm.connect(rabbitmq.url) as connection:
        found = server_version(connection)
    print(f"RabbitMQ {'.'.join(map(str, found))}, pika {pika.__version__}")
    yield found


def test_without_a_bound_the_poison_message_comes_back_forever(
    rabbitmq: RabbitMQ, version: tuple[int, ...]
) -> None:
    # Classic queue: the requeued message returns to its place at the head.
    classic = demo_unbounded(rabbitmq.url, rabbitmq.name("classic"), quorum=False)
    assert classic.deliveries["poison"] >= 50
    assert classic.processed == []  # blocked behind it
    assert classic.still_queued == 1 + len(GOOD)
    # Quorum queue without a limit (3.x default; 4.0+ defaults to 20): the
    # message goes to the back, good ones pass, the poison one loops.
    quorum = demo_unbounded(rabbitmq.url, rabbitmq.name("quorum"), quorum=True)
    assert quorum.deliveries["poison"] >= 50
    assert sorted(quorum.processed) == [b.decode() for b in GOOD]
    assert quorum.still_queued == 1


def test_quorum_delivery_limit_dead_letters_and_keeps_the_rest_flowing(
    rabbitmq: RabbitMQ, version: tuple[int, ...]
) -> None:
    limit = 3
    outcome = demo_delivery_limit(
        rabbitmq.url,
        rabbitmq.name("orders"),
        dead_letter_exchange=rabbitmq.name("orders.dlx"),
        dead_letter_queue=rabbitmq.name("orders.dlq"),
        delivery_limit=limit,
    )
    assert sorted(outcome.processed) == [b.decode() for b in GOOD]
    assert outcome.deliveries["poison"] == limit + 1
    assert outcome.deliveries["malformed"] == 1
    assert outcome.dead_lettered == [
        "malformed (rejected)",
        "poison (delivery_limit)",
    ]


def test_counted_retries_work_on_any_queue(
    rabbitmq: RabbitMQ, version: tuple[int, ...]
) -> None:
    outcome = demo_counted_retries(
        rabbitmq.url,
        rabbitmq.name("orders"),
        dead_letter_queue=rabbitmq.name("orders.dlq"),
        max_attempts=3,
    )
    assert sorted(outcome.processed) == [b.decode() for b in GOOD]
    assert outcome.deliveries["poison"] == 3
    assert outcome.deliveries["malformed"] == 1
    assert outcome.dead_lettered == [
        "malformed (PermanentError: not valid JSON)",
        "poison (RuntimeError: downstream rejects this payload)",
    ]


def test_counted_retry_keeps_every_property(rabbitmq: RabbitMQ) -> None:
    """The retry copy carries the original's properties; only headers grow."""
    work, retry, dead = (rabbitmq.name(n) for n in ("props", "props.retry", "dlq"))
    original = pika.BasicProperties(
        content_type="application/json",
        content_encoding="utf-8",
        headers={"tenant": "acme"},
        delivery_mode=2,
        priority=7,
        correlation_id="corr-1",
        reply_to="replies",
        expiration="60000",
        message_id="msg-1",
        timestamp=1_700_000_000,
        type="order.placed",
        user_id="guest",
        app_id="shop",
    )
    with pm.connect(rabbitmq.url) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        for queue in (work, retry, dead):
            channel.queue_declare(queue, durable=True)
        channel.basic_publish("", work, b"poison", original, mandatory=True)
        method, properties, body = channel.basic_get(work, auto_ack=False)
        assert method is not None
        result = pm.handle_with_counted_retries(
            channel,
            method,
            properties,
            body,
            example_handler,
            retry_queue=retry,
            dead_letter_queue=dead,
            max_attempts=3,
        )
        _, copy, _ = channel.basic_get(retry, auto_ack=True)
    assert result == "requeued"
    assert copy is not None
    assert copy.headers == {
        "tenant": "acme",
        pm.ATTEMPTS: 1,
        "error": "RuntimeError: downstream rejects this payload",
    }
    expected = {k: v for k, v in vars(original).items() if k != "headers"}
    assert {k: v for k, v in vars(copy).items() if k != "headers"} == expected


def test_nack_counts_toward_the_limit_only_before_4_3(
    rabbitmq: RabbitMQ, version: tuple[int, ...]
) -> None:
    """3.x counts every return; 4.3 counts reject and crashes, not nack.

    The branch for 4.3 and later encodes the RabbitMQ 4.3 documentation
    (Negative Acknowledgements, "basic.reject vs. basic.nack"); it has not run
    on the broker these tests were last run against (3.10.8). Where it runs,
    the 3.x branch checks the exact outcome: four deliveries, then the
    dead-letter queue with reason ``delivery_limit``.
    """

    def run(timeout: float) -> harness.Outcome:
        return demo_delivery_limit(
            rabbitmq.url,
            rabbitmq.name("nack"),
            dead_letter_exchange=rabbitmq.name("nack.dlx"),
            dead_letter_queue=rabbitmq.name("nack.dlq"),
            delivery_limit=3,
            nack=True,
            timeout=timeout,
        )

    if version < (4, 3):
        outcome = run(timeout=10)
        assert outcome.deliveries["poison"] == 4
        assert "poison (delivery_limit)" in outcome.dead_lettered
    else:  # from the 4.3 documentation, not run: never dead-lettered
        with pytest.raises(TimeoutError):
            run(timeout=3)


def test_delivery_limit_also_stops_a_message_that_kills_its_consumer(
    rabbitmq: RabbitMQ, version: tuple[int, ...]
) -> None:
    killed, processed, dead = harness.crash_limit(rabbitmq)
    assert killed == 4  # delivered limit + 1 times, then dead-lettered
    assert processed == [b.decode() for b in GOOD]
    assert dead == ["poison (delivery_limit)"]


def test_counted_retries_cannot_count_a_crash(
    rabbitmq: RabbitMQ, version: tuple[int, ...]
) -> None:
    result = harness.crash_counted(rabbitmq)
    assert result.killed == 6 and result.processed == []  # died on the same one
    assert result.first == b"poison"
    assert result.redelivered
    assert pm.ATTEMPTS not in result.headers  # no consumer lived to count
    assert (result.left, result.dead) == (1 + len(GOOD), 0)
