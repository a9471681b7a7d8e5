"""The process's one pool, created on first use (and the race without `Once`)."""

from __future__ import annotations

from collections.abc import Callable

from snippets.lazy_loading.lazy_pools.pool import LazyPool
from snippets.lazy_loading.thread_safe_lazy_init import Once

__all__ = ["Database", "NaiveDatabase"]


# --8<-- [start:naive-lazy]
class NaiveDatabase:
    """The broken version, kept for the tests: check-then-act pool creation."""

    def __init__(self, create: Callable[[], LazyPool]) -> None:
        self._create = create
        self._pool: LazyPool | None = None

    def pool(self) -> LazyPool:
        """The pool; several, if several requests ask before the first returns."""
        if self._pool is None:  # every request that arrives now sees None
            self._pool = self._create()  # ... and each one creates a pool
        return self._pool


# --8<-- [end:naive-lazy]


# --8<-- [start:database]
class Database:
    """The process's one pool, created on first use.

    `Once` runs `create` exactly once, however many threads ask at the same
    moment; if it raises, nothing is stored and the next caller tries again.

    Args:
        create: Builds the pool, for example ``LazyPool(...).warm()``.
    """

    def __init__(self, create: Callable[[], LazyPool]) -> None:
        self._pool = Once(create)

    def pool(self) -> LazyPool:
        """The pool, created by the first caller."""
        return self._pool.get()

    def close(self) -> None:
        """Close the pool if it was ever created."""
        if self._pool.initialized:
            self._pool.get().close()


# --8<-- [end:database]
