"""A cache writer in a process of its own, for the action cache's crash case.

    python -m snippets.support.build_optimization_writer MODE ROOT STOP KEY

It writes a 16-chunk output for KEY into the cache at ROOT (MODE ``in-place``
or ``atomic``). Before chunk STOP it prints ``stopped`` and waits for a line
on stdin that never comes: the caller kills it there. A STOP of 16 or more
lets it finish and print ``done``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from snippets.build_optimization.action_cache import ActionCache
from snippets.build_optimization.action_cache.demo import CHUNK, InPlaceCache

__all__ = ["CHUNKS", "main"]

CHUNKS = 16


def chunks(stop: int) -> Iterator[bytes]:
    """16 distinct chunks; stop before chunk ``stop`` until stdin has a line."""
    for n in range(CHUNKS):
        if n == stop:
            print("stopped", flush=True)
            sys.stdin.readline()
        yield bytes([65 + n]) * CHUNK


def main(argv: Sequence[str]) -> int:
    """Write one output in MODE, stopping before chunk STOP."""
    mode, root, stop, key = argv[0], Path(argv[1]), int(argv[2]), argv[3]
    if mode == "in-place":
        InPlaceCache(root).put(key, chunks(stop))
    else:
        ActionCache(root).store(key, {"out.bin": chunks(stop)})
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
