"""The cases the single-flight loader page shows.

Run one with ``python -m snippets.code_splitting.single_flight_loader.demo demo``.
"""

from __future__ import annotations

import asyncio
import sys
import threading

from snippets.code_splitting.single_flight_loader.fetch import (
    PartLoadError,
    fetch_part,
)
from snippets.code_splitting.single_flight_loader.loader import SingleFlightLoader
from snippets.code_splitting.single_flight_loader.naive import (
    NaiveLoader,
    PoisonedLoader,
)
from snippets.support.cases import run_cases
from snippets.support.code_splitting_origin import PartServer

__all__: list[str] = []


# --8<-- [start:demo]
async def demo(callers: int = 20) -> list[str]:
    """Let ``callers`` tasks ask for one part at once; count the fetches."""
    lines = []
    with PartServer() as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            for label, make in (
                ("naive", NaiveLoader[str, str]),
                ("single-flight", SingleFlightLoader[str, str]),
            ):
                loader = make(lambda name: fetch_part(server.url, name))
                key = f"chart-{label}"
                results = await asyncio.gather(
                    *(loader.get(key) for _ in range(callers))
                )
                fetches = server.requests[f"/parts/{key}"]
                lines.append(
                    f"{label:<13} callers={callers} fetches={fetches} "
                    f"distinct results={len(set(results))}"
                )
            server.fail_next["/parts/model"] = 1  # the first fetch fails
            for label, make2 in (
                ("poisoned", PoisonedLoader[str, str]),
                ("evict-on-fail", SingleFlightLoader[str, str]),
            ):
                loader2 = make2(lambda name: fetch_part(server.url, name))
                outcomes = []
                for _ in range(3):
                    try:
                        outcomes.append(await loader2.get("model"))
                    except PartLoadError as exc:
                        outcomes.append(f"error ({exc})")
                    server.fail_next["/parts/model"] = 0
                lines.append(f"{label:<13} " + " | ".join(outcomes))
                server.fail_next["/parts/model"] = 1
        finally:
            server.shutdown()
    return lines


# --8<-- [end:demo]


def show_demo() -> list[str]:
    """Twenty callers for one part, with and without single-flight."""
    return asyncio.run(demo())


if __name__ == "__main__":
    sys.exit(run_cases({"demo": show_demo}))
