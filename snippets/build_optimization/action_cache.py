"""Content-addressed action cache with atomic publish.

A build step (an *action*) is identified by what goes into it: its command
line, the digests of its input files, the environment variables it reads and
the version of the tool. The SHA-256 of that description is the action key.

* The content-addressable store (CAS) keeps each output under the SHA-256 of
  its bytes: ``cas/<digest>``.
* The action cache (AC) maps an action key to the digests of its outputs:
  ``ac/<key>``, a small JSON file, written after the blobs it names.

Every file is published the same way: streamed into a temporary file in the
directory where it will live, flushed to disk with ``fsync``, then renamed
over its final name with ``os.replace``. A reader sees no file or the whole
file. A reader also checks each blob's digest, so a damaged blob is a miss,
never a wrong hit. A later, different result for the same key replaces the
stored one and is counted per key in ``stats.nondeterministic``; with
``strict=True`` the first result stays and the second raises
`NonHermeticActionError`.

POSIX only: the atomic rename and the directory ``fsync`` are POSIX behaviour.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

TMP_PREFIX = ".tmp-"
_HEX64 = re.compile(r"[0-9a-f]{64}")


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


# --8<-- [start:key]
@dataclass(frozen=True)
class Action:
    """What goes into a build step, and nothing else.

    Args:
        argv: The command line, exactly as it runs.
        inputs: Input path -> SHA-256 of its content (see `file_digest`).
        env: Only the environment variables the tool reads.
        tool: The tool's identity, such as the output of ``cc --version``.
    """

    argv: Sequence[str]
    inputs: Mapping[str, str]
    env: Mapping[str, str] = field(default_factory=dict)
    tool: str = ""

    def key(self) -> str:
        """The action key: SHA-256 over a canonical encoding of the fields."""
        description = {
            "v": 1,  # bump when the encoding changes: old keys must not match
            "argv": list(self.argv),
            "inputs": sorted(self.inputs.items()),
            "env": sorted(self.env.items()),
            "tool": self.tool,
        }
        # JSON keeps field boundaries: ["a b"] and ["a", "b"] differ.
        encoded = json.dumps(description, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(encoded.encode()).hexdigest()


def file_digest(path: Path) -> str:
    """SHA-256 of a file's content, read in chunks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# --8<-- [end:key]


# --8<-- [start:publish]
def write_temp(directory: Path, chunks: Iterable[bytes]) -> tuple[Path, str]:
    """Stream ``chunks`` into a new temporary file in ``directory``.

    The file is on disk (``fsync``) when this returns. On any error, including
    cancellation, the temporary file is removed; a process that is killed
    leaves it behind for cache maintenance to delete.

    Returns:
        The temporary path and the SHA-256 of what was written.
    """
    fd, name = tempfile.mkstemp(dir=directory, prefix=TMP_PREFIX)
    tmp = Path(name)
    digest = hashlib.sha256()
    try:
        with open(fd, "wb") as out:
            for chunk in chunks:
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, digest.hexdigest()


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` survive a power cut (POSIX)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --8<-- [end:publish]


@dataclass
class CacheStats:
    """Counters of one `ActionCache` object (not of the directory)."""

    hits: int = 0
    misses: int = 0
    corrupt: int = 0  # blobs or entries that failed their check
    # action key -> how often it produced a result unlike the stored one
    nondeterministic: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, name: str) -> None:
        """Add one to the counter ``name``; safe from several threads."""
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    def count_nondeterministic(self, key: str) -> None:
        """Add one to the count of different results for ``key``."""
        with self._lock:
            self.nondeterministic[key] = self.nondeterministic.get(key, 0) + 1


class NonHermeticActionError(Exception):
    """One action key, two different results: the action is not reproducible."""

    def __init__(self, key: str, stored: Mapping[str, str], new: Mapping[str, str]):
        differ = sorted(n for n in {*stored, *new} if stored.get(n) != new.get(n))
        super().__init__(f"action {key[:12]} produced different {', '.join(differ)}")
        self.key = key
        self.stored = dict(stored)
        self.new = dict(new)


class ActionCache:
    """An action cache (AC) over a content-addressable store (CAS) on disk.

    Several threads and processes may use one directory at the same time.
    Readers take no lock; writers never write to a name that readers use.

    Args:
        root: The cache directory; ``cas/`` and ``ac/`` are created in it.
        strict: Raise `NonHermeticActionError` when a key gets a second,
            different result, and keep the first. By default the new result
            replaces the old one and is counted in ``stats.nondeterministic``.
    """

    def __init__(self, root: Path, *, strict: bool = False) -> None:
        self.strict = strict
        self.cas = root / "cas"
        self.ac = root / "ac"
        self.cas.mkdir(parents=True, exist_ok=True)
        self.ac.mkdir(parents=True, exist_ok=True)
        self.stats = CacheStats()

    # --8<-- [start:cas]
    def put_blob(self, chunks: Iterable[bytes]) -> str:
        """Store one output; return its digest, which is also its name."""
        tmp, digest = write_temp(self.cas, chunks)
        # Same bytes, same name: replacing an existing blob changes nothing a
        # reader can see, and refreshes its mtime for cache maintenance.
        os.replace(tmp, self.cas / digest)  # atomic: old or new, never partial
        fsync_dir(self.cas)
        return digest

    def get_blob(self, digest: str) -> bytes | None:
        """The blob's bytes, or None if it is missing or does not match."""
        try:
            data = (self.cas / digest).read_bytes()
        except FileNotFoundError:
            return None
        if hashlib.sha256(data).hexdigest() != digest:
            self.stats.count("corrupt")  # bit rot, or a copy made by another tool
            return None
        return data

    # --8<-- [end:cas]

    # --8<-- [start:ac]
    def put_action(self, key: str, outputs: Mapping[str, str]) -> None:
        """Record output name -> blob digest for ``key``. Store the blobs first.

        Storing the same result again is a no-op. A different result replaces
        the stored one and is counted in ``stats.nondeterministic``.

        Raises:
            NonHermeticActionError: In strict mode, when ``key`` already has
                different outputs; the stored entry stays.
        """
        entry = json.dumps({"outputs": dict(outputs)}, sort_keys=True).encode()
        tmp, _ = write_temp(self.ac, [entry])
        final = self.ac / key
        try:
            os.link(tmp, final)  # publish only if absent: fails if the name exists
        except FileExistsError:
            stored = self._read_entry(final)
            if stored is not None and stored != dict(outputs):
                self.stats.count_nondeterministic(key)
                if self.strict:
                    raise NonHermeticActionError(key, stored, outputs) from None
            if stored != dict(outputs):  # unreadable, or a different result
                os.replace(tmp, final)  # atomic: readers see old or new entry
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(self.ac)

    def get_action(self, key: str) -> dict[str, bytes] | None:
        """All outputs of ``key``, or None: any missing or bad blob is a miss."""
        stored = self._read_entry(self.ac / key)
        outputs: dict[str, bytes] = {}
        for name, digest in (stored or {}).items():
            data = self.get_blob(digest)
            if data is None:
                break
            outputs[name] = data
        else:
            if stored is not None:
                self.stats.count("hits")
                return outputs
        self.stats.count("misses")
        return None

    # --8<-- [end:ac]

    def _read_entry(self, path: Path) -> dict[str, str] | None:
        try:
            outputs = json.loads(path.read_bytes())["outputs"]
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            self.stats.count("corrupt")
            return None
        valid = isinstance(outputs, dict) and all(
            isinstance(name, str) and isinstance(d, str) and _HEX64.fullmatch(d)
            for name, d in outputs.items()
        )
        if not valid:
            self.stats.count("corrupt")
            return None
        return dict(outputs)

    # --8<-- [start:run]
    def store(self, key: str, outputs: Mapping[str, Iterable[bytes]]) -> None:
        """Store every output in the CAS, then the AC entry that names them."""
        digests = {name: self.put_blob(chunks) for name, chunks in outputs.items()}
        self.put_action(key, digests)  # last: it only names blobs that exist

    def run(
        self, action: Action, build: Callable[[], Mapping[str, bytes]]
    ) -> tuple[dict[str, bytes], bool]:
        """Return the action's outputs from the cache, or build and store them.

        Returns:
            The outputs, and True if they came from the cache.

        Raises:
            NonHermeticActionError: In strict mode, the build produced
                outputs that differ from the ones stored under the same key.
        """
        key = action.key()
        cached = self.get_action(key)
        if cached is not None:
            return cached, True
        outputs = dict(build())
        self.store(key, {name: [data] for name, data in outputs.items()})
        return outputs, False

    # --8<-- [end:run]


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


def demo(root: Path) -> list[str]:
    """Run each race against the broken cache and against the pattern."""
    modes = {"in place": (False, False), "atomic": (True, False)}
    lines = []
    for run in (read_during_write, two_writers):
        for name, (atomic, _) in modes.items():
            result = run(root / f"{run.__name__}-{name}", atomic)
            lines.append(f"{run.__name__:<17}  {name:<8}  {result}")
    strict = two_writers(root / "two_writers-strict", atomic=True, strict=True)
    lines.append(f"{'two_writers':<17}  {'strict':<8}  {strict}")
    return lines


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as scratch:
        print(*demo(Path(scratch)), sep="\n")
