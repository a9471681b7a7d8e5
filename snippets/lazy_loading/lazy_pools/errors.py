"""What a caller of a bounded pool can get instead of a connection."""

from __future__ import annotations

__all__ = ["PoolClosed", "PoolTimeout"]


class PoolTimeout(Exception):
    """No connection became free within the acquire timeout."""


class PoolClosed(Exception):
    """The pool was closed."""
