"""The cases the ordered-processing page shows, and the consumers that reorder.

    python -m snippets.message_queues.ordered_processing.demo CASE

``order`` and ``priority`` need no server; ``rabbitmq`` runs against RabbitMQ.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import random
import sys
import threading
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import TypeVar

import pika

from snippets.message_queues.ordered_processing.aging import AgingPriorityQueue
from snippets.message_queues.ordered_processing.lanes import (
    _DONE,
    Event,
    Ledger,
    _Done,
    run_partitioned,
)
from snippets.message_queues.ordered_processing.rabbitmq import (
    declare_ordered_queue,
)
from snippets.support import services
from snippets.support.cases import run_cases
from snippets.support.message_queues_ordered import publish_and_consume

__all__: list[str] = []

T = TypeVar("T")


# --8<-- [start:competing]
async def run_competing(
    source: AsyncIterable[T],
    handle: Callable[[T], Awaitable[None]],
    *,
    workers: int,
    maxsize: int = 100,
) -> None:
    """The version that breaks order: `workers` consumers share one FIFO queue.

    The queue hands events out in order, but two events of one account can be
    in flight on two workers at once, and the second can finish first.
    """
    shared: asyncio.Queue[T | _Done] = asyncio.Queue(maxsize)

    async def worker() -> None:
        while not isinstance(item := await shared.get(), _Done):
            await handle(item)

    async with asyncio.TaskGroup() as group:
        for _ in range(workers):
            group.create_task(worker())
        async for item in source:
            await shared.put(item)
        for _ in range(workers):
            await shared.put(_DONE)  # one stop token per worker


# --8<-- [end:competing]


# --8<-- [start:events]
def account_events(accounts: int, per_account: int, seed: int) -> list[Event]:
    """Deposits and withdrawals, each account's in order, accounts mixed at random."""
    rng = random.Random(seed)
    next_seq = dict.fromkeys((f"acct-{a:02d}" for a in range(accounts)), 1)
    events = []
    while next_seq:
        account = rng.choice(sorted(next_seq))
        amount = rng.choice([100, 50, -40, -70, -90])
        events.append(Event(account, next_seq[account], amount))
        next_seq[account] += 1
        if next_seq[account] > per_account:
            del next_seq[account]
    return events


async def feed(events: list[Event]) -> AsyncIterator[Event]:
    """Events arriving one per turn of the event loop."""
    for event in events:
        await asyncio.sleep(0)
        yield event


# --8<-- [end:events]


# --8<-- [start:latency]
def applier(ledger: Ledger, seed: int) -> Callable[[Event], Awaitable[None]]:
    """Apply events after a seeded 0-5 turns of I/O latency each."""
    rng = random.Random(seed)
    latency: dict[Event, int] = {}

    async def apply(event: Event) -> None:
        for _ in range(latency.setdefault(event, rng.randint(0, 5))):
            await asyncio.sleep(0)
        ledger.apply(event)

    return apply


def replay(events: list[Event]) -> Ledger:
    """The right answer: every event applied one by one, in order."""
    ledger = Ledger()
    for event in events:
        ledger.apply(event)
    return ledger


# --8<-- [end:latency]


# --8<-- [start:turns]
async def turns_taken(work: Awaitable[None]) -> int:
    """Await `work`; return how many event-loop turns it took (a steady clock)."""
    turns = 0

    async def tick() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick())
    try:
        await work
    finally:
        ticker.cancel()
    return turns


# --8<-- [end:turns]


# --8<-- [start:order-demo]
async def order_demo(seed: int = 7) -> list[str]:
    """Same events, same latencies: competing consumers versus per-key lanes."""
    events = account_events(accounts=50, per_account=20, seed=seed)
    truth = replay(events).balances
    lines = [f"{len(events):,} events for {len(truth)} accounts, 4 workers"]
    for name in ("competing consumers", "lanes by account"):
        ledger = Ledger()
        handle = applier(ledger, seed)
        if name == "competing consumers":
            run = run_competing(feed(events), handle, workers=4)
        else:
            run = run_partitioned(feed(events), lambda e: e.account, handle, lanes=4)
        turns = await turns_taken(run)
        wrong = sum(ledger.balances.get(a) != b for a, b in truth.items())
        lines.append(
            f"{name}: {ledger.out_of_order} events out of order, "
            f"{wrong} of {len(truth)} balances wrong, {turns:,} turns"
        )
    return lines


# --8<-- [end:order-demo]


# --8<-- [start:priority-demo]
def priority_demo(slots: int = 300, age_every: int = 10) -> list[str]:
    """One worker, one urgent item arriving per slot: strict priority versus aging.

    Time is counted in service slots, so the numbers are the same on every run.
    """
    now = 0  # the clock both queues read: the current slot
    strict: queue.PriorityQueue[tuple[int, int, str]] = queue.PriorityQueue()
    aging: AgingPriorityQueue[str] = AgingPriorityQueue(
        3, age_every, maxsize=slots + 10, clock=lambda: now
    )
    seq, arrived = itertools.count(), {}
    for level, kind in ((1, "normal"), (2, "bulk")):
        for n in range(5):
            arrived[name := f"{kind}-{n}"] = 0
            strict.put((level, next(seq), name))
            aging.put(name, level)
    served: dict[str, list[tuple[str, int]]] = {"strict": [], "aging": []}
    for now in range(slots):
        arrived[name := f"urgent-{now}"] = now
        strict.put((0, next(seq), name))
        aging.put(name, 0)
        served["strict"].append((strict.get_nowait()[2], now))
        served["aging"].append((aging.get(timeout=0), now))
    lines = [f"{slots} slots, one urgent item arrives per slot; 5 normal, 5 bulk wait"]
    for policy, done in served.items():
        count: dict[str, int] = {"urgent": 0, "normal": 0, "bulk": 0}
        longest = dict.fromkeys(count, 0)
        for name, slot in done:
            kind = name.split("-")[0]
            count[kind] += 1
            longest[kind] = max(longest[kind], slot - arrived[name])
        lines.append(
            f"{policy}: served urgent {count['urgent']}, normal {count['normal']}/5, "
            f"bulk {count['bulk']}/5; longest wait: urgent {longest['urgent']}, "
            f"bulk {longest['bulk'] if count['bulk'] else 'never served'}"
        )
    return lines


# --8<-- [end:priority-demo]


# --8<-- [start:rabbitmq-race]
def slow_deposit_run(
    url: str, queue_name: str, *, single_active: bool, hold: float
) -> tuple[Ledger, set[str]]:
    """Deposit 100 then withdraw 80 on one account, through two consumers.

    Whoever receives the deposit is slow: it waits up to `hold` seconds for
    the withdrawal to be applied first. That makes the race certain instead
    of rare; it does not create it.
    """
    ledger, lock, withdrawn = Ledger(), threading.Lock(), threading.Event()
    receivers: set[str] = set()

    def handle(event: Event) -> None:
        if event.seq == 1:
            withdrawn.wait(hold)
        with lock:
            receivers.add(threading.current_thread().name)
            ledger.apply(event)
        if event.seq == 2:
            withdrawn.set()

    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        declare_ordered_queue(
            connection.channel(), queue_name, single_active=single_active
        )
    events = [Event("acct-42", 1, 100), Event("acct-42", 2, -80)]
    publish_and_consume(url, queue_name, events, handle)
    return ledger, receivers


# --8<-- [end:rabbitmq-race]


def rabbitmq_demo(url: str, plain: str, single: str, hold: float = 0.5) -> list[str]:
    """The lines the page shows: a plain queue versus single active consumer."""
    lines = ["one account: deposit 100, then withdraw 80; 2 consumers, prefetch 1"]
    for label, name, single_active in (
        ("plain queue", plain, False),
        ("x-single-active-consumer", single, True),
    ):
        ledger, receivers = slow_deposit_run(
            url, name, single_active=single_active, hold=hold
        )
        lines.append(
            f"{label}: {len(receivers)} consumer(s) got events, "
            f"{ledger.out_of_order} out of order, "
            f"balance {ledger.balances.get('acct-42', 0)} (want 20)"
        )
    return lines


def show_rabbitmq() -> list[str]:
    with services.rabbitmq() as mq:
        return rabbitmq_demo(mq.url, mq.name("plain"), mq.name("single"))


if __name__ == "__main__":
    sys.exit(
        run_cases(
            {
                "order": lambda: asyncio.run(order_demo()),
                "priority": priority_demo,
                "rabbitmq": show_rabbitmq,
            }
        )
    )
