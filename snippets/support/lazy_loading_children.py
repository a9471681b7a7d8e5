"""Child programs of the lazy-loading demos and tests, run with ``python -m``.

``python -m snippets.support.lazy_loading_children crashing-loader URL KEY
LEASE`` takes the Redis lock for KEY through a `StampedeGuard`, prints
``loading`` and then hangs in the load, so that a test can kill it while it
holds the lock.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

import redis

from snippets.lazy_loading.cache_stampede import Policy, StampedeGuard

__all__ = ["main"]


def crashing_loader(url: str, key: str, lease: float) -> None:
    """Hold the lock for `key` in a load that never returns."""
    client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=5)
    guard = StampedeGuard(client, Policy(lock_ttl=lease))

    def load() -> tuple[str, int]:
        print("loading", flush=True)
        time.sleep(60)  # killed before it returns
        return "never", 1

    guard.get(key, load)


def main(argv: Sequence[str]) -> int:
    """Run the child program named by the first argument."""
    match list(argv):
        case ["crashing-loader", url, key, lease]:
            crashing_loader(url, key, float(lease))
            return 0
        case _:
            print(
                "usage: python -m snippets.support.lazy_loading_children "
                "crashing-loader URL KEY LEASE",
                file=sys.stderr,
            )
            return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
