"""The cases the action-cache page shows: races and crashes, with and without it.

    python -m snippets.build_optimization.action_cache.demo demo
    python -m snippets.build_optimization.action_cache.demo crash

`InPlaceCache` is the cache without the pattern: it writes each output
straight to its final path.
"""

from __future__ import annotations

import random
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from snippets.build_optimization.action_cache import (
    TMP_PREFIX,
    ActionCache,
    CacheStats,
    NonHermeticActionError,
)
from snippets.support.cases import run_cases

__all__: list[str] = []  # the cases a page shows; the API is the package

KEY = "k" * 64
WRITER = "snippets.support.build_optimization_writer"


# --8<-- [start:naive]
class InPlaceCache:
    """The broken version, kept for the tests: outputs go straight to their path.

    `put` opens the final path and writes into it. Until the last chunk is
    written, a reader finds a file that exists, is shorter than the output,
    and is returned as a hit. A second writer truncates the file under the
    first one, and a writer killed half-way leaves a short file behind.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def put(self, key: str, chunks: Iterable[bytes]) -> None:
        """Write the output for ``key``, chunk by chunk, under its final name."""
        with open(self.root / key, "wb") as out:  # visible, and empty, from here
            for chunk in chunks:
                out.write(chunk)

    def get(self, key: str) -> bytes | None:
        """Whatever the file for ``key`` holds right now, or None."""
        try:
            return (self.root / key).read_bytes()  # no check: whatever is there
        except FileNotFoundError:
            return None


# --8<-- [end:naive]


CHUNK = 64 * 1024
Put = Callable[[str, Iterable[bytes]], None]
Get = Callable[[str], bytes | None]


def artifact(tag: str, chunks: int = 4) -> list[bytes]:
    """An output of ``chunks`` chunks; the tag stands for a build's timestamp."""
    return [tag.encode() * CHUNK for _ in range(chunks)]


def single_output(
    root: Path, atomic: bool, strict: bool = False
) -> tuple[Put, Get, CacheStats | None]:
    """put/get of one output named "o", through either cache, and its counters."""
    if not atomic:
        naive = InPlaceCache(root)
        return naive.put, naive.get, None
    cache = ActionCache(root, strict=strict)

    def get(key: str) -> bytes | None:
        return (cache.get_action(key) or {}).get("o")

    return lambda key, chunks: cache.store(key, {"o": chunks}), get, cache.stats


# --8<-- [start:race]
def held(
    chunks: list[bytes], after: int, reached: threading.Event, resume: threading.Event
) -> Iterator[bytes]:
    """Yield chunks, stopping after ``after`` of them until ``resume`` is set."""
    for n, chunk in enumerate(chunks):
        if n == after:
            reached.set()  # the writer has written `after` chunks and waits here
            resume.wait(timeout=10)
        yield chunk


def read_during_write(root: Path, atomic: bool) -> str:
    """A reader looks the entry up while the writer is one chunk in."""
    put, get, _ = single_output(root, atomic)
    key, output = "k" * 64, artifact("A")
    reached, resume = threading.Event(), threading.Event()
    writer = threading.Thread(target=put, args=(key, held(output, 1, reached, resume)))
    writer.start()
    reached.wait(timeout=10)
    seen = get(key)
    resume.set()
    writer.join(timeout=10)
    full = len(b"".join(output))
    if seen is None:
        return f"miss while writing, then {len(get(key) or b'')} of {full} bytes"
    return f"hit while writing with {len(seen)} of {full} bytes: torn"


# --8<-- [end:race]


def two_writers(root: Path, atomic: bool, strict: bool = False) -> str:
    """Builds A and B run one action at once; each output embeds its own tag.

    A writes one chunk, B writes everything, then A finishes.
    """
    put, get, stats = single_output(root, atomic, strict)
    key, a, b = "k" * 64, artifact("A"), artifact("B")
    reached, resume = threading.Event(), threading.Event()
    errors: list[str] = []

    def build_a() -> None:
        try:
            put(key, held(a, 1, reached, resume))
        except NonHermeticActionError as error:
            errors.append(type(error).__name__)

    writer_a = threading.Thread(target=build_a)
    writer_a.start()
    reached.wait(timeout=10)
    put(key, b)  # build B, start to finish
    resume.set()
    writer_a.join(timeout=10)
    owner = {b"".join(a): "A's output", b"".join(b): "B's output"}
    verdict = owner.get(get(key) or b"", "neither build's output")
    outcome = f"A raised {errors[0]}" if errors else "no error"
    if stats is not None:
        outcome += f", nondeterministic={stats.nondeterministic.get(key, 0)}"
    return f"entry holds {verdict}, {outcome}"


def show_demo() -> list[str]:
    """Run each race against the broken cache and against the pattern."""
    with tempfile.TemporaryDirectory() as scratch:
        return races(Path(scratch))


def races(root: Path) -> list[str]:
    """The races of `show_demo`, in ``root``."""
    modes = {"in place": (False, False), "atomic": (True, False)}
    lines = []
    for run in (read_during_write, two_writers):
        for name, (atomic, _) in modes.items():
            result = run(root / f"{run.__name__}-{name}", atomic)
            lines.append(f"{run.__name__:<17}  {name:<8}  {result}")
    strict = two_writers(root / "two_writers-strict", atomic=True, strict=True)
    lines.append(f"{'two_writers':<17}  {'strict':<8}  {strict}")
    return lines


def kill_writer_at(mode: str, root: Path, stop: int) -> None:
    """Start a writer process, let it stop before chunk ``stop``, SIGKILL it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", WRITER, mode, str(root), str(stop), KEY],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            if not selector.select(30) or proc.stdout.readline() != "stopped\n":
                raise RuntimeError(f"writer {proc.pid} did not stop at {stop}")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.wait(timeout=10)
        proc.communicate()


def after_crash(mode: str, root: Path) -> tuple[str, int]:
    """What a reader gets after the kill, and how many temporary files are left."""
    if mode == "in-place":
        data = InPlaceCache(root).get(KEY)
        return ("miss" if data is None else f"hit of {len(data)} bytes"), 0
    cache = ActionCache(root)
    outputs = cache.get_action(KEY)
    leftovers = [p for d in (cache.cas, cache.ac) for p in d.iterdir()]
    temporary = sum(p.name.startswith(TMP_PREFIX) for p in leftovers)
    return ("miss" if outputs is None else "hit"), temporary


def show_crash() -> list[str]:
    """Kill writers of each cache at 6 seeded points; count what they left."""
    stops = sorted(random.Random(1404).sample(range(1, 16), 6))
    lines = []
    with tempfile.TemporaryDirectory() as scratch:
        for mode in ("in-place", "atomic"):
            seen = [after_crash(mode, kill_at(mode, Path(scratch), s)) for s in stops]
            killed = f"{len(stops)} writers killed mid-write"
            if mode == "in-place":
                torn = sum(read.startswith("hit") for read, _ in seen)
                lines.append(
                    f"in place  {killed}: {torn} truncated entries served as hits"
                )
            else:
                misses = sum(read == "miss" for read, _ in seen)
                left = sum(count for _, count in seen)
                lines.append(
                    f"atomic    {killed}: {misses} misses, {left} temporary files left"
                )
    return lines


def kill_at(mode: str, scratch: Path, stop: int) -> Path:
    root = scratch / f"{mode}-{stop}"
    kill_writer_at(mode, root, stop)
    return root


if __name__ == "__main__":
    sys.exit(run_cases({"demo": show_demo, "crash": show_crash}))
