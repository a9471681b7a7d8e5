"""An ordered ``Executor.map`` that reads its input as it goes.

``Executor.map`` submits one task per item before it returns its iterator:
every item is pulled from the input and held, with its future, at once. For a
generator of a million rows that is a million futures in memory; for an
endless one, ``map`` never returns. Python 3.14 added ``buffersize=`` to
bound that. `map_bounded` does the same on 3.11 and later with ``submit``
and a queue of at most ``buffersize`` futures.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Executor, Future
from itertools import islice
from typing import TypeVar

__all__ = ["map_bounded"]

T = TypeVar("T")
R = TypeVar("R")


# --8<-- [start:bounded]
def map_bounded(
    executor: Executor,
    fn: Callable[[T], R],
    items: Iterable[T],
    buffersize: int,
    timeout: float | None = None,
) -> Generator[R, None, None]:
    """Results of ``fn`` over ``items``, in order, at most ``buffersize`` ahead.

    Nothing is pulled from ``items`` until the first result is asked for;
    then ``buffersize`` items are submitted, and one more each time you take
    a result. When you stop early (``break``, an exception), the futures not
    started yet are cancelled.

    Raises:
        TimeoutError: One result took longer than ``timeout`` seconds.
        Exception: What ``fn`` raised for an item, when its result is reached.
    """
    if buffersize < 1:
        raise ValueError("buffersize must be at least 1")
    source = iter(items)
    pending: deque[Future[R]] = deque()
    try:
        for item in islice(source, buffersize):
            pending.append(executor.submit(fn, item))
        while pending:
            result = pending[0].result(timeout)
            pending.popleft()
            yield result
            for item in islice(source, 1):  # refill after the caller came back
                pending.append(executor.submit(fn, item))
    finally:
        for future in pending:
            future.cancel()


# --8<-- [end:bounded]
