"""Ordered processing: competing consumers reorder a key's events and strict
priority starves; per-key lanes, single active consumer and aging fix them."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pika
import pytest

from snippets.message_queues.ordered_processing import (
    AgingPriorityQueue,
    Closed,
    Event,
    Ledger,
    declare_ordered_queue,
    lane_for,
    run_partitioned,
)
from snippets.message_queues.ordered_processing.demo import (
    account_events,
    applier,
    feed,
    replay,
    run_competing,
    slow_deposit_run,
)
from snippets.support.message_queues_ordered import wait_for_consumers
from tests.conftest import ROOT, RabbitMQ

CHILD = "snippets.support.message_queues_ordered_child"

# --------------------------------------------------------------------------- #
# Per-key order, standard library
# --------------------------------------------------------------------------- #


def wrong_balances(ledger: Ledger, events: list[Event]) -> int:
    truth = replay(events).balances
    return sum(ledger.balances.get(account) != b for account, b in truth.items())


def test_competing_consumers_apply_events_of_one_account_out_of_order() -> None:
    events = account_events(accounts=50, per_account=20, seed=7)
    ledger = Ledger()
    asyncio.run(run_competing(feed(events), applier(ledger, seed=7), workers=4))
    print(
        f"competing: {ledger.out_of_order} out of order, "
        f"{wrong_balances(ledger, events)} balances wrong"
    )
    assert ledger.out_of_order > 0
    assert wrong_balances(ledger, events) > 0


@pytest.mark.parametrize("seed", [1, 2, 3, 7, 11])
def test_lanes_keep_each_account_in_order(seed: int) -> None:
    events = account_events(accounts=50, per_account=20, seed=seed)
    ledger = Ledger()
    asyncio.run(
        run_partitioned(
            feed(events), lambda e: e.account, applier(ledger, seed), lanes=4
        )
    )
    assert ledger.out_of_order == 0
    assert ledger.balances == replay(events).balances


def test_lanes_run_different_accounts_in_parallel_and_one_account_serially() -> None:
    events = account_events(accounts=20, per_account=10, seed=3)
    in_flight: dict[str, int] = {}
    most_total = most_per_account = 0

    async def handle(event: Event) -> None:
        nonlocal most_total, most_per_account
        in_flight[event.account] = in_flight.get(event.account, 0) + 1
        most_total = max(most_total, sum(in_flight.values()))
        most_per_account = max(most_per_account, in_flight[event.account])
        for _ in range(3):
            await asyncio.sleep(0)
        in_flight[event.account] -= 1

    asyncio.run(run_partitioned(feed(events), lambda e: e.account, handle, lanes=4))
    assert most_per_account == 1
    assert most_total > 1


def test_a_failing_event_stops_the_lanes_instead_of_being_skipped() -> None:
    events = [Event("acct-01", seq, 10) for seq in range(1, 6)]
    ledger = Ledger()

    async def handle(event: Event) -> None:
        if event.seq == 3:
            raise RuntimeError("downstream refused event 3")
        ledger.apply(event)

    with pytest.raises(ExceptionGroup):
        asyncio.run(run_partitioned(feed(events), lambda e: e.account, handle, lanes=2))
    assert ledger.last_seq == {"acct-01": 2}  # 4 and 5 did not overtake 3


def test_lane_for_is_stable_across_processes_and_hash_is_not() -> None:
    seen = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-m", CHILD, "lane", "acct-01"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.split()
        seen.append(out)
    print(f"lane_for, hash() under PYTHONHASHSEED=1 and 2: {seen}")
    assert seen[0][0] == seen[1][0] == str(lane_for("acct-01", 1024))
    assert seen[0][1] != seen[1][1]


# --------------------------------------------------------------------------- #
# Priority without starvation
# --------------------------------------------------------------------------- #


def run_slots(
    pick: str, slots: int, age_every: int, backlog_level: int
) -> tuple[int, int]:
    """Serve one item per slot while one urgent item arrives per slot.

    Returns how many backlog items were served, and the longest wait of one.
    """
    now = 0
    aging: AgingPriorityQueue[str] = AgingPriorityQueue(
        3, age_every, maxsize=slots + 10, clock=lambda: now
    )
    strict: queue.PriorityQueue[tuple[int, int, str]] = queue.PriorityQueue()
    for n in range(5):
        aging.put(f"old-{n}", backlog_level)
        strict.put((backlog_level, n, f"old-{n}"))
    served, longest = 0, 0
    for now in range(slots):
        aging.put(f"urgent-{now}", 0)
        strict.put((0, 1_000 + now, f"urgent-{now}"))
        name = aging.get(timeout=0) if pick == "aging" else strict.get_nowait()[2]
        if name.startswith("old"):
            served, longest = served + 1, now
    return served, longest


def test_strict_priority_never_serves_the_backlog_under_sustained_urgent_load() -> None:
    served, _ = run_slots("strict", slots=500, age_every=10, backlog_level=2)
    assert served == 0


@pytest.mark.parametrize(("age_every", "level"), [(5, 1), (10, 2), (25, 2)])
def test_aging_serves_every_backlog_item_within_its_bound(
    age_every: int, level: int
) -> None:
    served, longest = run_slots(
        "aging", slots=500, age_every=age_every, backlog_level=level
    )
    bound = level * age_every + 5  # aged to level 0, then the 5 of them in turn
    print(
        f"aging every {age_every}, level {level}: longest wait {longest}, bound {bound}"
    )
    assert served == 5
    assert longest < bound


def test_aging_queue_hands_every_item_to_exactly_one_thread() -> None:
    work: AgingPriorityQueue[int] = AgingPriorityQueue(3, 0.001, maxsize=64)
    got: list[int] = []
    lock = threading.Lock()

    def producer(start: int) -> None:
        rng = random.Random(start)
        for n in range(start, start + 500):
            work.put(n, rng.randrange(3), timeout=5)

    def consumer() -> None:
        while True:
            try:
                item = work.get(timeout=5)
            except Closed:
                return
            with lock:
                got.append(item)

    producers = [threading.Thread(target=producer, args=(k * 500,)) for k in range(4)]
    consumers = [threading.Thread(target=consumer, daemon=True) for _ in range(4)]
    for thread in producers + consumers:
        thread.start()
    for thread in producers:
        thread.join(timeout=10)
    work.close()
    for thread in consumers:
        thread.join(timeout=5)
    assert not any(thread.is_alive() for thread in producers + consumers)
    assert sorted(got) == list(range(2_000))
    with pytest.raises(Closed):
        work.put(1, 0)


def test_aging_queue_put_times_out_when_full() -> None:
    work: AgingPriorityQueue[int] = AgingPriorityQueue(2, 1.0, maxsize=1)
    work.put(1, 0)
    with pytest.raises(queue.Full):
        work.put(2, 0, timeout=0.05)
    with pytest.raises(queue.Empty):
        AgingPriorityQueue[int](2, 1.0, maxsize=1).get(timeout=0.05)


# --------------------------------------------------------------------------- #
# RabbitMQ: single active consumer
# --------------------------------------------------------------------------- #


def server_version(url: str) -> str:
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        properties = connection._impl.server_properties
        return f"{properties['product']} {properties['version']}"


def test_rabbitmq_plain_queue_reorders_and_single_active_consumer_does_not(
    rabbitmq: RabbitMQ,
) -> None:
    print(f"server: {server_version(rabbitmq.url)}")
    ledger, receivers = slow_deposit_run(
        rabbitmq.url, rabbitmq.name("plain"), single_active=False, hold=2.0
    )
    assert len(receivers) == 2
    assert (ledger.out_of_order, ledger.balances["acct-42"]) == (1, 100)

    ledger, receivers = slow_deposit_run(
        rabbitmq.url, rabbitmq.name("single"), single_active=True, hold=0.3
    )
    assert len(receivers) == 1
    assert (ledger.out_of_order, ledger.balances["acct-42"]) == (0, 20)


def wait_for_line(log: Path, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while text not in (log.read_text() if log.exists() else ""):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{text!r} not in {log}")
        time.sleep(0.02)


def test_rabbitmq_standby_takes_over_in_order_when_the_active_consumer_is_killed(
    rabbitmq: RabbitMQ, tmp_path: Path
) -> None:
    print(f"server: {server_version(rabbitmq.url)}")
    queue_name, log = rabbitmq.name("failover"), tmp_path / "log.txt"
    with pika.BlockingConnection(pika.URLParameters(rabbitmq.url)) as connection:
        channel = connection.channel()
        declare_ordered_queue(channel, queue_name, single_active=True)

        def start(hold_at: int) -> subprocess.Popen[bytes]:
            args = [rabbitmq.url, queue_name, str(log), str(hold_at), "10"]
            return subprocess.Popen(
                [sys.executable, "-m", CHILD, "consumer", *args], cwd=ROOT
            )

        first = start(hold_at=4)  # stalls on event 4, to be killed there
        wait_for_consumers(channel, queue_name, 1, timeout=10)  # first is active
        second = start(hold_at=0)
        wait_for_consumers(channel, queue_name, 2, timeout=10)
        try:
            for seq in range(1, 11):
                body = json.dumps(dataclasses.asdict(Event("acct-7", seq, 10)))
                channel.basic_publish("", queue_name, body.encode())
            wait_for_line(log, f"{first.pid} got 4")
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
            assert second.wait(timeout=15) == 0  # it stops after event 10
        finally:
            for process in (first, second):
                if process.poll() is None:
                    process.kill()
                    process.wait(timeout=10)

    lines = [line.split() for line in log.read_text().splitlines()]
    applied = [(int(pid), int(seq)) for pid, what, seq in lines if what == "applied"]
    print(f"applied (pid, seq): {applied}")
    assert [seq for _, seq in applied] == list(range(1, 11))
    assert {pid for pid, seq in applied if seq < 4} == {first.pid}
    assert {pid for pid, seq in applied if seq >= 4} == {second.pid}
