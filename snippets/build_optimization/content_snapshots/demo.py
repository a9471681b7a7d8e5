"""The cases the content-snapshots page shows: two ways to break freshness.

    python -m snippets.build_optimization.content_snapshots.demo demo

`MtimeBuilder` is the make-style rule without the pattern: the output is fresh
when it is newer than every input.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from snippets.build_optimization.content_snapshots import (
    BuildResult,
    SnapshotBuilder,
    Step,
)
from snippets.support.cases import run_cases

__all__: list[str] = []  # the cases a page shows; the API is the package


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
def scenarios(workdir: Path) -> list[str]:
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


def show_demo() -> list[str]:
    """`scenarios` in a temporary directory."""
    with tempfile.TemporaryDirectory() as tmp:
        return scenarios(Path(tmp))


# --8<-- [end:demo]

if __name__ == "__main__":
    sys.exit(run_cases({"demo": show_demo}))
