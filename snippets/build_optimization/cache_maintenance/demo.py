"""The cases the cache-maintenance page shows: two races, with and without it.

    python -m snippets.build_optimization.cache_maintenance.demo demo

Cleaners run in processes of their own
(`snippets.support.build_optimization_cleaner`), held between measuring and
deleting so that the races happen every time.
"""

from __future__ import annotations

import functools
import sys
import tempfile
from multiprocessing.queues import Queue
from pathlib import Path

from snippets.build_optimization.cache_maintenance import (
    Eviction,
    publish,
    read,
    scan,
)
from snippets.build_optimization.cache_maintenance.naive import publish_unchecked
from snippets.support.build_optimization_cleaner import (
    POLICY,
    cleaner,
    collect,
    fill,
    signal_and_wait,
    spawn_context,
    stop,
)
from snippets.support.cases import run_cases

__all__: list[str] = []  # the cases a page shows; the API is the package


# --8<-- [start:race]
def cleaners_at_once(root: Path, pattern: bool, cleaners: int = 4) -> list[Eviction]:
    """Start ``cleaners`` processes on one over-full cache; return what each did."""
    fill(root)
    ctx = spawn_context()
    out: Queue[Eviction] = ctx.Queue()
    go, barrier = ctx.Event(), ctx.Barrier(cleaners)
    # Without the lock, every cleaner measures before any of them deletes.
    # With it, the winner waits inside the lock until the others have given up.
    hold = functools.partial(go.wait if pattern else barrier.wait, 10)
    procs = [
        ctx.Process(target=cleaner, args=(root, pattern, hold, out))
        for _ in range(cleaners)
    ]
    for proc in procs:
        proc.start()
    try:
        results = collect(out, procs, cleaners - 1 if pattern else 0)
        go.set()
        return results + collect(out, procs, cleaners - len(results))
    finally:
        stop(procs)


# --8<-- [end:race]


def republish_during_eviction(root: Path, pattern: bool) -> str:
    """A build republishes the oldest entry while a cleaner is between steps."""
    oldest = fill(root)[0]
    ctx = spawn_context()
    out: Queue[Eviction] = ctx.Queue()
    measured, go = ctx.Event(), ctx.Event()
    hold = functools.partial(signal_and_wait, measured, go)
    procs = [ctx.Process(target=cleaner, args=(root, pattern, hold, out))]
    procs[0].start()
    try:
        if not measured.wait(timeout=20):
            raise RuntimeError("the cleaner did not start")
        name = (publish if pattern else publish_unchecked)(root, oldest)
        go.set()
        collect(out, procs, 1)
    finally:
        stop(procs)
    kept = read(root, name) == oldest
    return "entry kept, read hits" if kept else "entry deleted, read misses"


def summary(root: Path, results: list[Eviction]) -> str:
    """One line: how many cleaners evicted, what they deleted, what is left."""
    ran = sum(r.ran for r in results)
    deleted = sum(r.deleted for r in results)
    left = sum(entry.size for entry in scan(root))
    skipped = f", {len(results) - ran} skipped" if ran < len(results) else ""
    return f"{ran} evicted{skipped}, {deleted} deleted, {left} bytes left"


def show_demo() -> list[str]:
    """Both races, without and with the pattern."""
    with tempfile.TemporaryDirectory() as scratch:
        return races(Path(scratch))


def races(root: Path) -> list[str]:
    """The races of `show_demo`, in ``root``."""
    lines = [f"limit {POLICY.limit_bytes} bytes, 100 entries of 1000 bytes"]
    for pattern in (False, True):
        where = root / f"cleaners-{pattern}"
        result = summary(where, cleaners_at_once(where, pattern))
        label = f"4 cleaners, {'pattern' if pattern else 'no lock'}:"
        lines.append(f"{label:<21} {result}")
    for pattern in (False, True):
        result = republish_during_eviction(root / f"republish-{pattern}", pattern)
        label = f"republish, {'pattern' if pattern else 'no lock'}:"
        lines.append(f"{label:<21} {result}")
    return lines


if __name__ == "__main__":
    sys.exit(run_cases({"demo": show_demo}))
