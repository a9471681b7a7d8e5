"""The cache without the pattern: no lock, no second look, no touch on publish."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from snippets.build_optimization.cache_maintenance.eviction import Eviction, Policy
from snippets.build_optimization.cache_maintenance.store import (
    entries_dir,
    scan,
    write_atomically,
)

__all__ = ["evict_unlocked", "publish_unchecked"]


# --8<-- [start:naive]
def publish_unchecked(root: Path, data: bytes) -> str:
    """The broken publish, kept for the demo: an existing entry is left as is."""
    name = hashlib.sha256(data).hexdigest()
    path = entries_dir(root) / name
    if not path.exists():  # if it exists, its old mtime still says "evict me"
        write_atomically(path, data)
    return name


def evict_unlocked(
    root: Path, policy: Policy, *, between: Callable[[], object] = lambda: None
) -> Eviction:
    """The broken cleaner, kept for the demo: no lock, no second look.

    ``between`` runs after measuring and before deleting; tests hold several
    cleaners there so that all of them measure the same over-full cache.
    """
    entries = scan(root)
    total = sum(entry.size for entry in entries)
    between()
    if total <= policy.limit_bytes:
        return Eviction(ran=True, size_after=total)
    to_free = total - int(policy.limit_bytes * policy.target_ratio)
    deleted = freed = 0
    for entry in sorted(entries, key=lambda e: e.mtime):
        if freed >= to_free:
            break
        try:
            entry.path.unlink()
        except FileNotFoundError:
            continue  # another cleaner got it: not freed by me, so keep going
        deleted, freed = deleted + 1, freed + entry.size
    return Eviction(
        ran=True, deleted=deleted, freed_bytes=freed, size_after=total - freed
    )


# --8<-- [end:naive]
