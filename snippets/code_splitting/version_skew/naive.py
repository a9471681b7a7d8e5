"""The broken loaders: pinned to the first manifest, or reloading on every error."""

from __future__ import annotations

import types

from snippets.code_splitting.version_skew.fetch import (
    MissingPart,
    fetch_manifest,
    fetch_part,
)

__all__ = ["NaiveLoader", "PinnedLoader"]


# --8<-- [start:naive]
class NaiveLoader:
    """Reloads the manifest on every error and tries again: a reload storm."""

    def __init__(self, base_url: str, max_attempts: int = 20) -> None:
        self._base_url = base_url
        self._manifest = fetch_manifest(base_url)
        self._max_attempts = max_attempts  # "forever", bounded for the demo

    def load(self, name: str) -> types.ModuleType:
        """Load a part, reloading the manifest after each failure."""
        for _ in range(self._max_attempts):
            try:
                return fetch_part(self._base_url, self._manifest, name)
            except MissingPart:
                self._manifest = fetch_manifest(self._base_url)
        raise MissingPart(f"{name!r}: gave up after {self._max_attempts} tries")


# --8<-- [end:naive]


class PinnedLoader:
    """Loads every part from the manifest it started with, like an open tab."""

    def __init__(self, base_url: str) -> None:
        self._base_url = base_url
        self._manifest = fetch_manifest(base_url)

    def load(self, name: str) -> types.ModuleType:
        """Load a part of the first release, or raise ``MissingPart``."""
        return fetch_part(self._base_url, self._manifest, name)
