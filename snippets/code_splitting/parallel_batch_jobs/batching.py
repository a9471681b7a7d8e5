"""Cut an iterable into batches: ``itertools.batched`` where it exists.

``itertools.batched`` is new in Python 3.12, and its ``strict`` parameter in
3.13. `batches` picks the standard one where the running Python has it and
falls back to the recipe of the ``itertools`` documentation on 3.11, with the
same behaviour everywhere, ``strict=True`` included.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

__all__ = ["batched_recipe", "batches"]

T = TypeVar("T")


# --8<-- [start:recipe]
def batched_recipe(iterable: Iterable[T], n: int) -> Iterator[tuple[T, ...]]:
    """The ``itertools`` documentation's recipe: ABC DEF G for ('ABCDEFG', 3)."""
    if n < 1:
        raise ValueError("n must be at least one")
    iterator = iter(iterable)
    while batch := tuple(islice(iterator, n)):
        yield batch


# --8<-- [end:recipe]


# --8<-- [start:batches]
def batches(
    iterable: Iterable[T], n: int, *, strict: bool = False
) -> Iterator[tuple[T, ...]]:
    """Tuples of ``n`` items, the last one shorter unless ``strict``.

    Lazy: it pulls ``n`` items from ``iterable`` per batch, not more.

    Raises:
        ValueError: ``n`` is less than 1, or ``strict`` and the last batch
            is short (``batched(): incomplete batch``, as 3.13 words it).
    """
    if sys.version_info >= (3, 13):
        return itertools.batched(iterable, n, strict=strict)
    if sys.version_info >= (3, 12):
        found = itertools.batched(iterable, n)
    else:
        found = batched_recipe(iterable, n)
    return _checked(found, n) if strict else found


def _checked(found: Iterator[tuple[T, ...]], n: int) -> Iterator[tuple[T, ...]]:
    for batch in found:
        if len(batch) != n:
            raise ValueError("batched(): incomplete batch")
        yield batch


# --8<-- [end:batches]
