"""Celery 5.7 against a real RabbitMQ and Redis: lost, repeated and hoarded tasks.

Every test starts real ``celery worker`` processes. A worker killed with
SIGKILL mid-task loses the task under the default early ack and runs it again
under ``task_acks_late``; a task that kills its pool process is failed, retried
a bounded number of times, or requeued forever, by setting; a busy worker
reserves tasks an idle one could run unless the prefetch is one and acks are
late; a countdown longer than the Redis visibility timeout runs twice, also
when the short timeout is set on another worker. The journal of what ran is a
Redis list the tasks write to.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import celery  # type: ignore[import-untyped]
import kombu
import pytest
import redis as redis_py
from celery.app.defaults import DEFAULTS  # type: ignore[import-untyped]
from kombu.transport.redis import Channel

from snippets.message_queues.celery_tasks import (
    RELIABLE,
    charge_once,
    charge_under_lock,
    redis_transport_options,
)
from snippets.message_queues.celery_tasks.demo import (
    charge_twice,
    eta_runs,
    kill_mid_task,
    poison_runs,
    who_ran_what,
)
from snippets.support.message_queues_celery import Lab
from tests.conftest import RabbitMQ, Redis

LOST = "WorkerLostError('Worker exited prematurely: signal 9 (SIGKILL) Job: {}.')"


@pytest.fixture
def mq_lab(rabbitmq: RabbitMQ, redis: Redis) -> Iterator[Lab]:
    print(f"Celery {celery.__version__}, kombu {kombu.__version__}")
    yield Lab(rabbitmq.url, redis, rabbitmq)


@pytest.fixture
def redis_lab(redis: Redis) -> Iterator[Lab]:
    yield Lab(redis.url, redis)


def test_the_defaults_the_page_names() -> None:
    assert celery.__version__ == "5.7.0"
    assert DEFAULTS["task_acks_late"] is False
    assert DEFAULTS["task_reject_on_worker_lost"] is None
    assert DEFAULTS["task_retry_on_worker_lost"] is False
    assert DEFAULTS["task_acks_on_failure_or_timeout"] is True
    assert DEFAULTS["worker_prefetch_multiplier"] == 4
    assert Channel.visibility_timeout == 3600
    assert (Channel.unacked_restore_interval, Channel.unacked_restore_throttle) == (
        10,
        10,
    )
    assert RELIABLE["task_acks_late"] is True


# --------------------------------------------------------------------------- #
# A worker killed mid-task
# --------------------------------------------------------------------------- #


def test_early_ack_loses_the_task_of_a_killed_worker(mq_lab: Lab) -> None:
    # t1 was acked (t2 was sent to a); after the kill only t2 comes back.
    counts, journal = kill_mid_task(mq_lab, {}, pool="prefork", acked=True)
    assert counts == (0, 1)
    assert journal == ["start t1 a", "start t2 b redelivered", "end t2 b redelivered"]


def test_acks_late_redelivers_the_task_and_it_runs_again(mq_lab: Lab) -> None:
    conf = {"task_acks_late": True}
    counts, journal = kill_mid_task(mq_lab, conf, pool="prefork", acked=False)
    assert counts == (1, 2)
    assert journal == [
        "start t1 a",
        "start t1 b redelivered",
        "end t1 b redelivered",
        "start t2 b",
        "end t2 b",
    ]


def test_the_solo_pool_sends_the_early_ack_only_after_the_task(mq_lab: Lab) -> None:
    # The ack waits for the event loop, which the solo pool's task blocks.
    counts, journal = kill_mid_task(mq_lab, {}, pool="solo", acked=False)
    assert counts == (1, 2)
    assert "end t1 b redelivered" in journal


# --------------------------------------------------------------------------- #
# A task that kills its pool process
# --------------------------------------------------------------------------- #


def test_a_lost_pool_process_fails_an_acks_late_task(mq_lab: Lab) -> None:
    assert poison_runs(mq_lab, "poison") == [
        "run 0 a",
        f"then: {LOST.format(0)}",
        "left in the queue after the worker is gone: 0",
    ]


def test_retry_on_worker_lost_bounds_the_runs(mq_lab: Lab) -> None:
    assert poison_runs(mq_lab, "poison_retry") == [
        "run 0 a",
        "run 1 a",  # max_retries=1
        f"then: {LOST.format(1)}",
        "left in the queue after the worker is gone: 0",
    ]


def test_reject_on_worker_lost_requeues_the_poison_task(mq_lab: Lab) -> None:
    runs = poison_runs(mq_lab, "poison_requeue", stop_after=3)
    assert runs == ["run 0 a", "run 0 a redelivered", "run 0 a redelivered"]


# --------------------------------------------------------------------------- #
# Prefetch and long tasks
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("conf", "busy", "idle"),
    [
        ({}, "long s1 s2 s3 s4", "s5 s6"),
        ({"worker_prefetch_multiplier": 1}, "long s1", "s2 s3 s4 s5 s6"),
        (RELIABLE, "long", "s1 s2 s3 s4 s5 s6"),
    ],
    ids=["default", "multiplier-1", "multiplier-1-acks-late"],
)
def test_a_busy_worker_holds_what_it_prefetched(
    mq_lab: Lab, conf: dict[str, Any], busy: str, idle: str
) -> None:
    ran = who_ran_what(mq_lab, conf)
    assert (" ".join(ran["a"]), " ".join(ran["b"])) == (busy, idle)


# --------------------------------------------------------------------------- #
# Redis: visibility timeout against a countdown
# --------------------------------------------------------------------------- #


def runs(journal: list[str]) -> tuple[int, int]:
    ends = [line for line in journal if line.startswith("end")]
    return len(ends), sum(line.endswith("redelivered") for line in ends)


def test_a_countdown_past_the_visibility_timeout_runs_twice(redis_lab: Lab) -> None:
    assert runs(eta_runs(redis_lab, 4)) == (2, 1)


def test_a_visibility_timeout_past_the_countdown_runs_it_once(
    redis_lab: Lab,
) -> None:
    assert runs(eta_runs(redis_lab, 60)) == (1, 0)


def test_the_shortest_visibility_timeout_on_the_database_wins(
    redis_lab: Lab,
) -> None:
    # b consumes another queue; its sweep still restores a's unacked task.
    assert runs(eta_runs(redis_lab, 60, other=4)) == (2, 1)


def test_transport_options_carry_the_timeout_and_the_prefix() -> None:
    options = redis_transport_options(43200, prefix="app1:")
    assert options["visibility_timeout"] == 43200
    assert options["global_keyprefix"] == "app1:"
    assert set(options) <= set(Channel.from_transport_options)


# --------------------------------------------------------------------------- #
# Two runs of the same task
# --------------------------------------------------------------------------- #


def test_a_lock_lets_a_repeated_task_charge_twice(mq_lab: Lab) -> None:
    journal, balance = charge_twice(mq_lab, "charge_locked", "order-1")
    assert (journal, balance) == (["order-1 charged", "order-1 charged"], 200)


def test_dedupe_on_the_order_charges_once(mq_lab: Lab) -> None:
    journal, balance = charge_twice(mq_lab, "charge_deduped", "order-1")
    assert (journal, balance) == (["order-1 charged", "order-1 skipped"], 100)


@pytest.fixture
def client(redis: Redis) -> Iterator[redis_py.Redis]:
    with redis_py.Redis.from_url(redis.url) as r:
        yield r


def test_a_lock_keeps_only_concurrent_copies_apart(
    client: redis_py.Redis, redis: Redis
) -> None:
    balance = redis.key("balance")
    lock = f"{balance}:lock:order-1"
    client.set(lock, "other-run", px=30_000)  # a first copy is still running
    assert not charge_under_lock(client, "order-1", 100, balance, ttl=30)
    client.delete(lock)  # it finished and released the lock
    assert charge_under_lock(client, "order-1", 100, balance, ttl=30)
    assert charge_under_lock(client, "order-1", 100, balance, ttl=30)
    assert int(client.get(balance) or 0) == 200


def test_dedupe_holds_for_copies_at_the_same_moment(
    client: redis_py.Redis, redis: Redis
) -> None:
    balance, copies = redis.key("balance"), 8
    barrier = threading.Barrier(copies)
    charged: list[bool] = []

    def copy(n: int) -> None:
        with redis_py.Redis.from_url(redis.url) as own:
            barrier.wait(timeout=10)
            charged.append(charge_once(own, "order-1", 100, balance, task_id=f"{n}"))

    threads = [threading.Thread(target=copy, args=(n,)) for n in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(charged) == [False] * (copies - 1) + [True]
    assert int(client.get(balance) or 0) == 100
    assert client.ttl(f"{balance}:done:order-1") > 6 * 24 * 3600
