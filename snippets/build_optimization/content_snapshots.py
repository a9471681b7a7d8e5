"""Incremental rebuild by content snapshot, not by timestamp.

A build step is fresh when the inputs it was built from are the inputs you have
now. Two ways to decide that:

* `MtimeBuilder` is the make-style rule: the output is fresh when it is newer
  than every input. An edit made while the step runs, or a file restored with
  an older modification time, leaves a stale output that counts as fresh.
* `SnapshotBuilder` hashes the inputs (SHA-256) *before* the step runs, records
  the output against that snapshot, and hashes them again afterwards. An input
  that changed during the step no longer matches the record, so the next build
  runs the step again; by default the builder retries at once.

The record (a small JSON manifest) is replaced atomically, so a crash leaves
the previous manifest, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

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


# --8<-- [start:mtime]
class MtimeBuilder:
    """The make-style rule, kept for comparison: rebuild when an input is newer.

    GNU make considers a target out of date when "any prerequisite is newer
    than the target". Nothing is recorded: the file system's clock is the state.
    """

    def is_fresh(self, sources: Sequence[Path], output: Path) -> bool:
        """True when the output exists and no source is newer than it."""
        if not output.exists():
            return False
        built_at = output.stat().st_mtime_ns
        return all(src.stat().st_mtime_ns <= built_at for src in sources)

    def build(self, sources: Sequence[Path], output: Path, step: Step) -> BuildResult:
        """Run the step unless the output looks fresh."""
        if self.is_fresh(sources, output):
            return BuildResult("fresh", attempts=0)
        step(sources, output)  # an edit made now is older than the output
        return BuildResult("built", attempts=1)


# --8<-- [end:mtime]


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


# --------------------------------------------------------------------------- #
# The demo: one "compiler", two ways to break freshness
# --------------------------------------------------------------------------- #


class Builder(Protocol):
    """What the demo needs from either builder."""

    def build(
        self, sources: Sequence[Path], output: Path, step: Step
    ) -> BuildResult: ...


def compile_sources(sources: Sequence[Path]) -> str:
    """The demo's "compiler": the upper-cased concatenation of its sources."""
    return "".join(src.read_text() for src in sorted(sources)).upper()


def compile_step(sources: Sequence[Path], output: Path) -> None:
    """The demo's build step: compile the sources into the output file."""
    output.write_text(compile_sources(sources))


# --8<-- [start:paused]
class PausedCompiler:
    """A step that reads its inputs, then waits for `resume` before writing.

    Only the first run pauses, so a retry runs straight through. The wait is
    bounded: a test that never resumes gets a `TimeoutError`, not a hang.
    """

    def __init__(self, timeout: float = 10.0) -> None:
        self.has_read = threading.Event()
        self.resume = threading.Event()
        self.timeout = timeout
        self.runs = 0

    def __call__(self, sources: Sequence[Path], output: Path) -> None:
        self.runs += 1
        text = compile_sources(sources)  # the compiler has read the old source
        if self.runs == 1:
            self.has_read.set()
            if not self.resume.wait(self.timeout):
                raise TimeoutError("the compiler was never resumed")
        output.write_text(text)


def edit_during_build(
    builder: Builder, source: Path, output: Path, text: str, mtime_s: int
) -> BuildResult:
    """Build `output` from `source`, rewriting `source` while the step runs."""
    step = PausedCompiler()
    results: list[BuildResult] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(builder.build([source], output, step))
        except BaseException as error:  # handed to the caller below
            errors.append(error)

    worker = threading.Thread(target=run, name="build")
    worker.start()
    try:
        if not step.has_read.wait(10):
            raise TimeoutError("the compiler never read its input")
        source.write_text(text)  # the edit lands mid-build ...
        os.utime(source, (mtime_s, mtime_s))  # ... at a fixed, known time
    finally:
        step.resume.set()
        worker.join(timeout=10)
    if errors:
        raise errors[0]
    if worker.is_alive():
        raise TimeoutError("the build did not finish in 10 s")
    return results[0]


# --8<-- [end:paused]


# --8<-- [start:scenarios]
T0 = 1_000_000_000  # a fixed source mtime (2001-09-09), far older than "now"


def stale_outputs(source: Path, output: Path) -> int:
    """1 when the output is not what the current source compiles to, else 0."""
    return int(output.read_text() != compile_sources([source]))


def race_scenario(builder: Builder, workdir: Path) -> tuple[str, str, int]:
    """Edit the source mid-build, then build again.

    Returns the two builds' statuses and the stale outputs accepted.
    """
    source, output = workdir / "a.c", workdir / "a.o"
    source.write_text("int a = 1;\n")
    os.utime(source, (T0, T0))
    first = edit_during_build(builder, source, output, "int a = 2;\n", T0 + 60)
    after = builder.build([source], output, compile_step)
    return first.status, after.status, stale_outputs(source, output)


def restore_scenario(builder: Builder, workdir: Path) -> tuple[str, str, int]:
    """Build, then restore another version of the source with an OLDER mtime.

    This is what an archive or cache restore that keeps file times does.
    """
    source, output = workdir / "b.c", workdir / "b.o"
    source.write_text("int b = 1;\n")
    os.utime(source, (T0, T0))
    first = builder.build([source], output, compile_step)
    source.write_text("int b = 2;\n")
    os.utime(source, (T0 - 3600, T0 - 3600))  # content new, time went back
    after = builder.build([source], output, compile_step)
    return first.status, after.status, stale_outputs(source, output)


# --8<-- [end:scenarios]


# --8<-- [start:demo]
def demo(workdir: Path) -> list[str]:
    """Run both scenarios with both builders; one line per run."""
    lines = []
    scenarios = {"edit mid-build": race_scenario, "restore older": restore_scenario}
    for label, scenario in scenarios.items():
        for name in ("mtime", "snapshot"):
            where = workdir / f"{name}-{label.replace(' ', '-')}"
            where.mkdir(parents=True)
            builder: Builder = (
                MtimeBuilder()
                if name == "mtime"
                else SnapshotBuilder(where / "manifest.json", max_attempts=1)
            )
            first, after, stale = scenario(builder, where)
            lines.append(
                f"{label:<15} {name:<9} build 1: {first:<6} build 2: {after:<6}"
                f" stale outputs accepted: {stale}"
            )
    return lines


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        print(*demo(Path(tmp)), sep="\n")
# --8<-- [end:demo]
