"""The action cache (AC) over a content-addressable store (CAS) on disk."""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from snippets.build_optimization.action_cache.key import Action
from snippets.build_optimization.action_cache.publish import fsync_dir, write_temp

__all__ = ["ActionCache", "CacheStats", "NonHermeticActionError"]

_HEX64 = re.compile(r"[0-9a-f]{64}")


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
