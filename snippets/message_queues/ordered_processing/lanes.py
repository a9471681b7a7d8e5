"""Per-key FIFO lanes: all events of a key go to one lane, picked by a stable hash."""

from __future__ import annotations

import asyncio
import enum
import zlib
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

__all__ = ["Event", "Ledger", "lane_for", "run_partitioned"]

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
