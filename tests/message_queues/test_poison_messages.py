"""Poison messages against a real RabbitMQ: the loop, then the bounds.

Without a bound a message whose handler always fails comes back forever: on a
classic queue it blocks every message behind it, on a quorum queue without a
delivery limit (3.x) it loops at the back of the queue. With a quorum-queue
delivery limit, or with attempts counted in a header, it is delivered a
bounded number of times and lands in a dead-letter queue while the good
messages are processed.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest

from snippets.message_queues import poison_messages as pm
from tests.conftest import OutputCheck, RabbitMQ

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = "message_queues/poison_messages"
GOOD = len(pm.GOOD)


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


def line(label: str, outcome: pm.Outcome) -> str:
    return (
        f"{label}: poison delivered {outcome.deliveries['poison']} times, "
        f"{len(outcome.processed)} of {GOOD} good processed, "
        f"{outcome.still_queued} still queued"
    )


def test_without_a_bound_the_poison_message_comes_back_forever(
    rabbitmq: RabbitMQ, version: tuple[int, ...], expected_output: OutputCheck
) -> None:
    # Classic queue: the requeued message returns to its place at the head.
    classic = pm.demo_unbounded(rabbitmq.url, rabbitmq.name("classic"), quorum=False)
    assert classic.deliveries["poison"] >= 50
    assert classic.processed == []  # blocked behind it
    assert classic.still_queued == 1 + GOOD
    # Quorum queue without a limit (3.x default; 4.0+ defaults to 20): the
    # message goes to the back, good ones pass, the poison one loops.
    quorum = pm.demo_unbounded(rabbitmq.url, rabbitmq.name("quorum"), quorum=True)
    assert quorum.deliveries["poison"] >= 50
    assert sorted(quorum.processed) == [b.decode() for b in pm.GOOD]
    assert quorum.still_queued == 1
    expected_output(
        f"{OUTPUT}.unbounded",
        line("classic queue", classic) + "\n" + line("quorum queue", quorum),
    )


def times(outcome: pm.Outcome, body: str) -> str:
    count = outcome.deliveries[body]
    return f"{body}: delivered {count} time{'' if count == 1 else 's'}"


def summary(outcome: pm.Outcome) -> str:
    return "\n".join(
        [
            f"delivery order: {' '.join(outcome.order)}",
            f"good: {len(outcome.processed)} of {GOOD} processed",
            times(outcome, "poison"),
            times(outcome, "malformed"),
            "dead-letter queue:",
            *(f"  {entry}" for entry in outcome.dead_lettered),
        ]
    )


def test_quorum_delivery_limit_dead_letters_and_keeps_the_rest_flowing(
    rabbitmq: RabbitMQ, version: tuple[int, ...], expected_output: OutputCheck
) -> None:
    limit = 3
    outcome = pm.demo_delivery_limit(
        rabbitmq.url,
        rabbitmq.name("orders"),
        dead_letter_exchange=rabbitmq.name("orders.dlx"),
        dead_letter_queue=rabbitmq.name("orders.dlq"),
        delivery_limit=limit,
    )
    assert sorted(outcome.processed) == [b.decode() for b in pm.GOOD]
    assert outcome.deliveries["poison"] == limit + 1
    assert outcome.deliveries["malformed"] == 1
    assert outcome.dead_lettered == [
        "malformed (rejected)",
        "poison (delivery_limit)",
    ]
    expected_output(f"{OUTPUT}.delivery_limit", summary(outcome))


def test_counted_retries_work_on_any_queue(
    rabbitmq: RabbitMQ, version: tuple[int, ...], expected_output: OutputCheck
) -> None:
    outcome = pm.demo_counted_retries(
        rabbitmq.url,
        rabbitmq.name("orders"),
        dead_letter_queue=rabbitmq.name("orders.dlq"),
        max_attempts=3,
    )
    assert sorted(outcome.processed) == [b.decode() for b in pm.GOOD]
    assert outcome.deliveries["poison"] == 3
    assert outcome.deliveries["malformed"] == 1
    assert outcome.dead_lettered == [
        "malformed (PermanentError: not valid JSON)",
        "poison (RuntimeError: downstream rejects this payload)",
    ]
    expected_output(f"{OUTPUT}.counted", summary(outcome))


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
            pm.example_handler,
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

    def run(timeout: float) -> pm.Outcome:
        return pm.demo_delivery_limit(
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


# A consumer process whose handler kills it, like an out-of-memory kill or a
# segfault in a native library: no exception handler runs, nothing is logged.
CRASHING_CONSUMER = """
import os, signal, sys, time
from snippets.message_queues import poison_messages as pm

url, queue, dead_letter_queue, mode = sys.argv[1:5]

def handle(body):
    if body == b"poison":
        os.kill(os.getpid(), signal.SIGKILL)

last = [time.monotonic()]
with pm.connect(url) as connection:
    channel = connection.channel()
    channel.confirm_delivery()
    idle = lambda: time.monotonic() - last[0] > 0.5
    for method, props, body in pm.deliveries(
        channel, queue, prefetch=1, until=idle, timeout=10
    ):
        if mode == "limit":
            pm.handle_with_limit(channel, method, props, body, handle)
        else:
            pm.handle_with_counted_retries(
                channel, method, props, body, handle, retry_queue=queue,
                dead_letter_queue=dead_letter_queue, max_attempts=3,
            )
        print(body.decode(), flush=True)
        last[0] = time.monotonic()
"""


def consumers(url: str, queue: str) -> int:
    with pm.connect(url) as connection:
        method = connection.channel().queue_declare(queue, passive=True).method
        return int(method.consumer_count)


def run_until_clean_exit(
    url: str, queue: str, dead_letter_queue: str, mode: str, max_runs: int
) -> tuple[int, list[str]]:
    """Start consumers one after another; count the ones the poison kills.

    Returns how many were killed and what the consumers processed, in order.
    """
    killed, processed = 0, []
    for _ in range(max_runs):
        # The broker has seen the previous consumer die and requeued its message.
        pm.wait_until(lambda: consumers(url, queue) == 0, 10)
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                CRASHING_CONSUMER,
                url,
                queue,
                dead_letter_queue,
                mode,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        processed += done.stdout.split()
        if done.returncode != -signal.SIGKILL:
            assert done.returncode == 0, done.stderr
            break
        killed += 1
    return killed, processed


def test_delivery_limit_also_stops_a_message_that_kills_its_consumer(
    rabbitmq: RabbitMQ, version: tuple[int, ...], expected_output: OutputCheck
) -> None:
    queue, dlx, dlq = (rabbitmq.name(n) for n in ("jobs", "jobs.dlx", "jobs.dlq"))
    with pm.connect(rabbitmq.url) as connection:
        channel = connection.channel()
        pm.declare_quorum_with_dead_letter(
            channel,
            queue,
            dead_letter_exchange=dlx,
            dead_letter_queue=dlq,
            delivery_limit=3,
        )
        channel.confirm_delivery()
        for body in [b"poison", *pm.GOOD]:
            channel.basic_publish("", queue, body, mandatory=True)
        killed, processed = run_until_clean_exit(
            rabbitmq.url, queue, dlq, "limit", max_runs=8
        )
        pm.wait_until(lambda: pm.depth(channel, dlq) > 0, 10)  # async transfer
        dead = pm.read_dead_letters(channel, dlq)
    assert killed == 4  # delivered limit + 1 times, then dead-lettered
    assert processed == [b.decode() for b in pm.GOOD]
    assert dead == ["poison (delivery_limit)"]
    expected_output(
        f"{OUTPUT}.crash_limit",
        f"consumers killed by the poison message: {killed}\n"
        f"then processed: {' '.join(processed)}\n"
        f"dead-letter queue: {' '.join(dead)}",
    )


def test_counted_retries_cannot_count_a_crash(
    rabbitmq: RabbitMQ, version: tuple[int, ...], expected_output: OutputCheck
) -> None:
    queue, dlq = rabbitmq.name("jobs"), rabbitmq.name("jobs.dlq")
    with pm.connect(rabbitmq.url) as connection:
        channel = connection.channel()
        for name in (queue, dlq):
            channel.queue_declare(name, durable=True)
        channel.confirm_delivery()
        for body in [b"poison", *pm.GOOD]:
            channel.basic_publish("", queue, body, mandatory=True)
        killed, processed = run_until_clean_exit(
            rabbitmq.url, queue, dlq, "counted", max_runs=6
        )
        pm.wait_until(lambda: consumers(rabbitmq.url, queue) == 0, 10)
        left, dead = pm.depth(channel, queue), pm.depth(channel, dlq)
        method, properties, body = channel.basic_get(queue, auto_ack=False)
        channel.basic_nack(method.delivery_tag, requeue=True)
    assert killed == 6 and processed == []  # every run died on the same message
    assert body == b"poison"
    assert method.redelivered
    headers = properties.headers or {}
    assert pm.ATTEMPTS not in headers  # no consumer lived to count
    assert (left, dead) == (1 + len(pm.GOOD), 0)
    expected_output(
        f"{OUTPUT}.crash_counted",
        f"consumers killed by the poison message: {killed} (stopped trying)\n"
        f"first in the queue: {body.decode()}, "
        f"{pm.ATTEMPTS} header: {headers.get(pm.ATTEMPTS, 'missing')}\n"
        f"still queued: {left}, dead-lettered: {dead}",
    )
