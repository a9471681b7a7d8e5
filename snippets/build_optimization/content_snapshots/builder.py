"""Decide freshness from input digests taken before the step ran."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["BuildResult", "SnapshotBuilder", "Step", "file_digest", "snapshot"]

Step = Callable[[Sequence[Path], Path], None]
"""A build step: reads the sources, writes the output file."""


@dataclass(frozen=True)
class BuildResult:
    """What `SnapshotBuilder.build` did.

    Attributes:
        status: ``"fresh"`` (step skipped), ``"built"`` (step ran on inputs
            that did not change while it ran) or ``"raced"`` (inputs kept
            changing; the output is recorded against the old snapshot, so the
            next build runs the step again).
        attempts: How many times the step ran.
    """

    status: Literal["fresh", "built", "raced"]
    attempts: int


# --8<-- [start:snapshot]
def file_digest(path: Path) -> str:
    """The SHA-256 of a file's content, read in chunks."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def snapshot(sources: Sequence[Path]) -> dict[str, str]:
    """Map each source path to the digest of its content, right now."""
    return {str(src): file_digest(src) for src in sorted(sources)}


# --8<-- [end:snapshot]


class SnapshotBuilder:
    """Decide freshness by input content, recorded before the step runs.

    Args:
        manifest: JSON file holding, per output, the input digests the output
            was built from and the output's own digest.
        max_attempts: How often to run a step whose inputs change while it
            runs, before giving up with ``"raced"``.
    """

    def __init__(self, manifest: Path, max_attempts: int = 3) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.manifest = manifest
        self.max_attempts = max_attempts
        self._lock = threading.Lock()  # one read-modify-write at a time

    # --8<-- [start:fresh]
    def is_fresh(self, sources: Sequence[Path], output: Path) -> bool:
        """True when the output was built from exactly the current inputs.

        The output's own digest is checked too: a truncated or hand-edited
        output is not fresh, whatever its inputs.
        """
        entry = self._load().get(str(output))
        if entry is None or not output.exists():
            return False
        if entry["inputs"] != snapshot(sources):
            return False  # an input differs from what the output was built from
        return entry["output"] == file_digest(output)

    # --8<-- [end:fresh]

    # --8<-- [start:build]
    def build(self, sources: Sequence[Path], output: Path, step: Step) -> BuildResult:
        """Run the step unless the output is fresh; a stale output never looks fresh.

        If the step raises, nothing is recorded and the exception propagates:
        the previous record no longer matches a rewritten output, so the next
        build runs the step again.
        """
        if self.is_fresh(sources, output):
            return BuildResult("fresh", attempts=0)
        for attempt in range(1, self.max_attempts + 1):
            before = snapshot(sources)  # what the step is about to read
            step(sources, output)
            # Record against BEFORE: if an input changed while the step ran,
            # the record no longer matches the input, so it is rebuilt later.
            self._record(output, before, file_digest(output))
            if snapshot(sources) == before:
                return BuildResult("built", attempts=attempt)
        return BuildResult("raced", attempts=self.max_attempts)

    # --8<-- [end:build]

    # --8<-- [start:record]
    def _record(self, output: Path, inputs: Mapping[str, str], digest: str) -> None:
        """Store one entry; replace the manifest atomically."""
        with self._lock:
            entries = self._load()
            entries[str(output)] = {"inputs": dict(inputs), "output": digest}
            fd, tmp = tempfile.mkstemp(dir=self.manifest.parent, suffix=".tmp")
            try:
                with os.fdopen(fd, "w") as handle:
                    json.dump(entries, handle, sort_keys=True)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.manifest)  # readers see old or new, whole
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    def _load(self) -> dict[str, dict[str, object]]:
        """The manifest's entries; an absent manifest means nothing is fresh."""
        try:
            with self.manifest.open() as handle:
                data: dict[str, dict[str, object]] = json.load(handle)
        except FileNotFoundError:
            return {}
        return data

    # --8<-- [end:record]
