"""Cache stampede protection: cache-aside with single-flight, a Redis lock,
stale serving, early refresh and version-checked writes.

When a hot key expires, every request that misses reloads it: the backing
store takes N identical reads at once. `StampedeGuard` keeps that to one:

* in-process single-flight: threads that miss the same key share one load;
* a Redis lock (``SET key token NX PX ttl``) so that one process loads while
  the others poll the cache for its result;
* a soft expiry before the hard TTL: a value past its soft expiry is served
  (stale) while one caller refreshes it, and a draw from an exponential
  distribution starts that refresh a little early, so a hot value is usually
  renewed before anybody misses it;
* version-checked writes, so a slow reload cannot overwrite a newer value.

The Redis client must be created with ``decode_responses=True``.
"""

from snippets.lazy_loading.cache_stampede.entry import (
    Entry,
    Policy,
    read_entry,
    refresh_due,
)
from snippets.lazy_loading.cache_stampede.guard import StampedeGuard
from snippets.lazy_loading.cache_stampede.lock import RedisLock
from snippets.lazy_loading.cache_stampede.single_flight import SingleFlight
from snippets.lazy_loading.cache_stampede.store import (
    Loader,
    product_loader,
    update_price,
)

__all__ = [
    "Entry",
    "Loader",
    "Policy",
    "RedisLock",
    "SingleFlight",
    "StampedeGuard",
    "product_loader",
    "read_entry",
    "refresh_due",
    "update_price",
]
