"""Single-flight part loader: one fetch per part, however many callers ask.

An on-demand part (a plugin, a model file, a remote module) is fetched the
first time somebody needs it. When many callers need it at the same moment,
each of them would start its own fetch. The loaders here keep one in-flight
load per key and share it:

* `SingleFlightLoader` is the asyncio version: one task per key, awaited by
  every caller through `asyncio.shield`, evicted if it fails.
* `ThreadSingleFlightLoader` is the threaded version: the first caller runs
  the load, the others wait on its `concurrent.futures.Future`.

A successful load stays memoized; a failed one is removed, so the next call
retries instead of receiving the same error forever.
"""

from snippets.code_splitting.single_flight_loader.fetch import (
    FETCH_TIMEOUT,
    PartLoadError,
    fetch_part,
    fetch_part_blocking,
)
from snippets.code_splitting.single_flight_loader.loader import (
    SingleFlightLoader,
    ThreadSingleFlightLoader,
)

__all__ = [
    "FETCH_TIMEOUT",
    "PartLoadError",
    "SingleFlightLoader",
    "ThreadSingleFlightLoader",
    "fetch_part",
    "fetch_part_blocking",
]
