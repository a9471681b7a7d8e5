"""A loader that survives a deploy with one shared manifest reload."""

from __future__ import annotations

import threading
import time
import types
from collections.abc import Callable

from snippets.code_splitting.version_skew.fetch import (
    MissingPart,
    fetch_manifest,
    fetch_part,
)

__all__ = ["SkewSafeLoader"]


# --8<-- [start:loader]
class SkewSafeLoader:
    """Loads parts of one release; survives a deploy with one manifest reload.

    A missing part triggers at most one manifest reload per stale version in
    each ``cooldown`` window. Concurrent failures share that reload: the first
    caller fetches, the others wait on the lock and retry with its manifest.
    """

    def __init__(
        self,
        base_url: str,
        timeout: float = 5.0,
        cooldown: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base_url = base_url
        self._timeout = timeout
        self._cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._manifest = fetch_manifest(base_url, timeout)
        self._reloaded: dict[str, float] = {}  # stale version -> reload time

    @property
    def version(self) -> str:
        """The release this loader currently loads from."""
        return self._manifest.version

    def load(self, name: str) -> types.ModuleType:
        """Load a part; on a missing part reload once, retry once, or raise."""
        manifest = self._manifest
        try:
            return fetch_part(self._base_url, manifest, name, self._timeout)
        except MissingPart:
            if not self._refresh(stale=manifest.version):
                raise
        return fetch_part(self._base_url, self._manifest, name, self._timeout)

    def _refresh(self, stale: str) -> bool:
        with self._lock:
            if self._manifest.version != stale:
                return True  # another caller already moved on: just retry
            last = self._reloaded.get(stale)
            if last is not None and self._clock() - last < self._cooldown:
                return False  # reloaded from this version recently: fail loudly
            self._reloaded[stale] = self._clock()
            self._manifest = fetch_manifest(self._base_url, self._timeout)
            return self._manifest.version != stale


# --8<-- [end:loader]
