"""Cache cleaners in processes of their own, for the cache-maintenance page.

`cleaner` is the target of a ``multiprocessing`` process (spawn start method,
so it lives in an importable module). Run as a program, one cleaner prints
``measured`` once it has measured (with ``hold`` in MODE) and waits for a line
on stdin, then prints what it did as JSON:

    python -m snippets.support.build_optimization_cleaner ROOT MODE TIMEOUT

MODE is ``pattern``, ``pattern-hold``, ``no-lock`` or ``no-lock-hold``.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import queue
import sys
import time
from collections.abc import Callable, Sequence
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path

from snippets.build_optimization.cache_maintenance import (
    Eviction,
    Policy,
    entries_dir,
    evict,
    publish,
)
from snippets.build_optimization.cache_maintenance.naive import evict_unlocked

__all__ = [
    "POLICY",
    "cleaner",
    "collect",
    "fill",
    "signal_and_wait",
    "spawn_context",
    "stop",
]


def spawn_context() -> multiprocessing.context.SpawnContext:
    """The start method every cleaner process uses."""
    return multiprocessing.get_context("spawn")


POLICY = Policy(limit_bytes=95_000, target_ratio=0.9, grace_seconds=60)


def fill(root: Path, count: int = 100, size: int = 1000) -> list[bytes]:
    """``count`` entries of ``size`` bytes, an hour old; the first is the oldest."""
    contents = [n.to_bytes(4, "big") * (size // 4) for n in range(count)]
    old = time.time() - 3600
    for n, data in enumerate(contents):
        name = publish(root, data)
        os.utime(entries_dir(root) / name, (old + n, old + n))
    return contents


def cleaner(
    root: Path, pattern: bool, hold: Callable[[], object], out: Queue[Eviction]
) -> None:
    """One build's cleanup, in its own process; ``hold`` runs after measuring."""
    if pattern:
        out.put(evict(root, POLICY, between=hold))
    else:
        out.put(evict_unlocked(root, POLICY, between=hold))


def collect(
    out: Queue[Eviction], procs: Sequence[BaseProcess], count: int, timeout: float = 20
) -> list[Eviction]:
    """``count`` results from ``out``; fail fast if a cleaner process died."""
    results: list[Eviction] = []
    deadline = time.monotonic() + timeout
    while len(results) < count:
        try:
            results.append(out.get(timeout=0.1))
        except queue.Empty:
            crashed = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if crashed or time.monotonic() > deadline:
                raise RuntimeError(f"cleaners failed: exit codes {crashed}") from None
    return results


def stop(procs: Sequence[BaseProcess]) -> None:
    """Join every process; kill one that is still running after 10 s."""
    for proc in procs:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()
            proc.join(timeout=10)


def signal_and_wait(measured: Event, go: Event) -> None:
    """Tell the parent the cleaner has measured; wait until it says go."""
    measured.set()
    go.wait(timeout=10)


def main(argv: Sequence[str]) -> int:
    """One cleaner: evict from ROOT in MODE, print the result as JSON."""
    root, mode, timeout = Path(argv[0]), argv[1], float(argv[2])

    def hold() -> None:
        print("measured", flush=True)
        sys.stdin.readline()

    between: Callable[[], object] = hold if "hold" in mode else (lambda: None)
    if mode.startswith("pattern"):
        result = evict(root, POLICY, lock_timeout=timeout, between=between)
    else:
        result = evict_unlocked(root, POLICY, between=between)
    print(json.dumps(dataclasses.asdict(result)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
