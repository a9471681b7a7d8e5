"""A submodule that is expensive to import.

It stands in for one that pulls in a large dependency or builds tables at
import time; here it imports `decimal` and precomputes a table.
"""

from __future__ import annotations

import decimal

__all__ = ["square"]

PLACES = decimal.Decimal("0.01")
SQUARES = {n: decimal.Decimal(n) ** 2 for n in range(10_000)}


def square(n: int) -> decimal.Decimal:
    """A value from the table built at import time."""
    return SQUARES[n].quantize(PLACES)
