"""Serialized cache maintenance: one cleaner at a time, and never a fresh entry.

Several builds share one cache directory. Each build publishes entries and,
when the directory has grown past its limit, evicts the least recently used
ones. Two things go wrong when nothing coordinates them:

* Two builds measure the same over-full cache at the same moment and both
  evict, so together they delete far more than the limit asks for.
* A cleaner decides from a listing that is already stale and deletes an entry
  that a build has just published or used.

The fix has three parts:

* `maintenance_lock` serializes cleaners across processes with ``fcntl.flock``
  on a lock file. A build that finds the lock taken skips maintenance instead
  of waiting for it; reads and publishes never take the lock.
* `evict` measures the cache inside the lock and deletes oldest first. Right
  before deleting an entry it moves it aside and checks its age again, and it
  puts back anything younger than the grace period.
* `publish` and `read` touch an entry, so "just published" and "just used"
  both count as young.

Entries are content-addressed: an entry's name is the SHA-256 of its bytes.
POSIX only (``fcntl``).
"""

from snippets.build_optimization.cache_maintenance.eviction import (
    Eviction,
    Policy,
    evict,
    maintenance_lock,
    remove_leftovers,
)
from snippets.build_optimization.cache_maintenance.store import (
    Entry,
    entries_dir,
    publish,
    read,
    scan,
)

__all__ = [
    "Entry",
    "Eviction",
    "Policy",
    "entries_dir",
    "evict",
    "maintenance_lock",
    "publish",
    "read",
    "remove_leftovers",
    "scan",
]
