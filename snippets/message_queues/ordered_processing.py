"""Ordered processing: per-key FIFO lanes, and priorities that cannot starve.

Competing consumers on one queue reorder the events of a key as soon as two
of them are in flight at once. Routing every key to one lane by a stable hash
keeps each key's events in order while different keys still run in parallel
(the sequential convoy). For priorities, a strict priority queue never serves
low-priority work while urgent work keeps arriving; aging a waiting item by
one level per interval bounds how long any item waits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import itertools
import json
import queue
import random
import threading
import time
import zlib
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pika

T = TypeVar("T")


# --8<-- [start:ledger]
@dataclass(frozen=True)
class Event:
    """One change to an account. `seq` counts 1, 2, 3... per account."""

    account: str
    seq: int
    amount: int  # > 0 deposit, < 0 withdrawal


@dataclass
class Ledger:
    """Balances with one business rule: a withdrawal above the balance is refused."""

    balances: dict[str, int] = field(default_factory=dict)
    last_seq: dict[str, int] = field(default_factory=dict)
    out_of_order: int = 0  # events applied after a later event of the same account

    def apply(self, event: Event) -> None:
        """Apply one event; the result depends on the order events arrive in."""
        if event.seq < self.last_seq.get(event.account, 0):
            self.out_of_order += 1
        self.last_seq[event.account] = max(
            event.seq, self.last_seq.get(event.account, 0)
        )
        balance = self.balances.get(event.account, 0)
        if balance + event.amount >= 0:  # refused withdrawals change nothing
            self.balances[event.account] = balance + event.amount


# --8<-- [end:ledger]


class _Done(enum.Enum):
    TOKEN = enum.auto()


_DONE = _Done.TOKEN


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


# --8<-- [start:partitioned]
def lane_for(key: str, lanes: int) -> int:
    """A lane number that is the same in every process (unlike `hash(str)`)."""
    return zlib.crc32(key.encode()) % lanes


async def run_partitioned(
    source: AsyncIterable[T],
    key: Callable[[T], str],
    handle: Callable[[T], Awaitable[None]],
    *,
    lanes: int,
    maxsize: int = 100,
) -> None:
    """Sequential convoy: one queue and one worker per lane, each key in one lane.

    A key's events run one at a time, in arrival order; different lanes run
    in parallel. An exception from `handle` stops every lane (the task group
    cancels them) instead of letting later events of that key overtake it.
    """
    queues: list[asyncio.Queue[T | _Done]] = [
        asyncio.Queue(maxsize) for _ in range(lanes)
    ]

    async def lane_worker(lane: asyncio.Queue[T | _Done]) -> None:
        while not isinstance(item := await lane.get(), _Done):
            await handle(item)  # the next event of this lane waits for this one

    async with asyncio.TaskGroup() as group:
        for lane in queues:
            group.create_task(lane_worker(lane))
        async for item in source:
            await queues[lane_for(key(item), lanes)].put(item)  # full lane: wait
        for lane in queues:
            await lane.put(_DONE)  # one consumer per lane: one token each


# --8<-- [end:partitioned]


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


class Closed(Exception):
    """Raised by `put()` after `close()`, and by `get()` once closed and drained."""


@dataclass
class _Entry(Generic[T]):
    seq: int
    enqueued: float
    item: T


# --8<-- [start:aging-queue]
class AgingPriorityQueue(Generic[T]):
    """A thread-safe, bounded priority queue in which waiting raises priority.

    Level 0 is the most urgent. Within a level items are FIFO. An item moves
    up one level for every `age_every` units of `clock` it waits, so an item
    at level `p` competes as level 0 after `p * age_every` at most: nothing
    starves, however much urgent work keeps arriving.
    """

    def __init__(
        self,
        levels: int,
        age_every: float,
        *,
        maxsize: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._levels: list[deque[_Entry[T]]] = [deque() for _ in range(levels)]
        self._age_every, self._maxsize, self._clock = age_every, maxsize, clock
        self._size, self._closed, self._seq = 0, False, itertools.count()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)

    def put(self, item: T, priority: int, timeout: float | None = None) -> None:
        """Add `item` at level `priority`; wait while full (`queue.Full` on timeout)."""
        if not 0 <= priority < len(self._levels):
            raise ValueError(f"priority must be in 0..{len(self._levels) - 1}")
        with self._not_full:
            if not self._not_full.wait_for(
                lambda: self._closed or self._size < self._maxsize, timeout
            ):
                raise queue.Full
            if self._closed:
                raise Closed
            entry = _Entry(next(self._seq), self._clock(), item)
            self._levels[priority].append(entry)
            self._size += 1
            self._not_empty.notify()

    # --8<-- [end:aging-queue]
    # --8<-- [start:aging-get]
    def get(self, timeout: float | None = None) -> T:
        """Take the most urgent item after aging; ties go to the oldest."""
        with self._not_empty:
            if not self._not_empty.wait_for(
                lambda: self._size or self._closed, timeout
            ):
                raise queue.Empty
            if not self._size:
                raise Closed
            now, best, best_level = self._clock(), (len(self._levels), 0), 0
            for level, entries in enumerate(self._levels):
                if entries:  # the head is the oldest, so it has aged the most
                    aged = int((now - entries[0].enqueued) // self._age_every)
                    rank = (max(0, level - aged), entries[0].seq)
                    if rank < best:
                        best, best_level = rank, level
            self._size -= 1
            self._not_full.notify()
            return self._levels[best_level].popleft().item

    # --8<-- [end:aging-get]
    def close(self) -> None:
        """Refuse new items; `get()` drains what is queued, then raises `Closed`."""
        with self._lock:
            self._closed = True
            self._not_empty.notify_all()
            self._not_full.notify_all()


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


# --8<-- [start:rabbitmq]
def declare_ordered_queue(channel: Any, name: str, *, single_active: bool) -> None:
    """Declare a durable classic queue, optionally with one active consumer.

    With `x-single-active-consumer` the broker delivers to one registered
    consumer and fails over to another when that one is cancelled or dies,
    so the order of the queue is the order of processing.
    """
    arguments = {"x-single-active-consumer": True} if single_active else {}
    channel.queue_declare(name, durable=True, arguments=arguments)


def consume_events(
    url: str, queue_name: str, handle: Callable[[Event], None], stop: threading.Event
) -> None:
    """Apply events one at a time and ack each only after it is applied.

    `prefetch_count=1` keeps one unacked event per consumer. If `handle`
    raises, the connection closes and the broker requeues the event for the
    next consumer. Returns once `stop` is set.
    """
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=1)
        for method, _, body in channel.consume(queue_name, inactivity_timeout=0.05):
            if stop.is_set():
                break
            if method is not None:
                handle(Event(**json.loads(body)))
                channel.basic_ack(method.delivery_tag)
        channel.cancel()
    finally:
        connection.close()


# --8<-- [end:rabbitmq]


def wait_for_consumers(
    channel: Any, queue_name: str, count: int, timeout: float
) -> None:
    """Poll the queue until `count` consumers are registered on it."""
    deadline = time.monotonic() + timeout
    while channel.queue_declare(queue_name, passive=True).method.consumer_count < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} consumers did not register in {timeout} s")
        time.sleep(0.02)


# --8<-- [start:rabbitmq-run]
def publish_and_consume(
    url: str,
    queue_name: str,
    events: list[Event],
    handle: Callable[[Event], None],
    *,
    consumers: int = 2,
    timeout: float = 10.0,
) -> None:
    """Start `consumers` threads on the queue, publish `events`, wait for all."""
    done, lock, handled = threading.Event(), threading.Lock(), [0]

    def counted(event: Event) -> None:
        handle(event)
        with lock:
            handled[0] += 1
            if handled[0] == len(events):
                done.set()

    stop = threading.Event()
    threads = [
        threading.Thread(
            target=consume_events, args=(url, queue_name, counted, stop), name=f"c{n}"
        )
        for n in range(consumers)
    ]
    for thread in threads:
        thread.start()
    try:
        with pika.BlockingConnection(pika.URLParameters(url)) as connection:
            channel = connection.channel()
            wait_for_consumers(channel, queue_name, consumers, timeout)
            for event in events:
                body = json.dumps(dataclasses.asdict(event)).encode()
                channel.basic_publish("", queue_name, body)
        if not done.wait(timeout):
            raise TimeoutError(f"{len(events) - handled[0]} events not handled")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout)


# --8<-- [end:rabbitmq-run]


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
