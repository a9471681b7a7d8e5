"""Read Ninja's ``.ninja_log``: what ran, when, and for how long.

Ninja 1.11 writes a version line, ``# ninja log v5``, then one line per
output of every command it ran, tab-separated: start and end time in
milliseconds since that build started, the output's mtime, the output's
path, and a hash of the command line. Each build appends to the file, and
its times start again at zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LogEntry", "Step", "read_ninja_log", "runs", "steps"]


@dataclass(frozen=True)
class LogEntry:
    """One line of ``.ninja_log``: one output of one command."""

    start_ms: int
    end_ms: int
    mtime: int
    output: str
    command_hash: str


@dataclass(frozen=True)
class Step:
    """One command of one build, with every output it wrote."""

    outputs: tuple[str, ...]
    start_ms: int
    end_ms: int

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms


# --8<-- [start:read]
def read_ninja_log(path: Path) -> list[LogEntry]:
    """Every line of a ``.ninja_log``, in the order Ninja wrote them."""
    lines = path.read_text().splitlines()
    if not lines or not lines[0].startswith("# ninja log v"):
        raise ValueError(f"{path}: not a Ninja build log")
    version = int(lines[0].removeprefix("# ninja log v"))
    if version not in (5, 6, 7):  # Ninja 1.11: 5, 1.12: 6, 1.13: 7; same fields
        raise ValueError(f"{path}: log version {version}, not 5, 6 or 7")
    entries = []
    for line in lines[1:]:
        start, end, mtime, output, command_hash = line.split("\t")
        entry = LogEntry(int(start), int(end), int(mtime), output, command_hash)
        entries.append(entry)
    return entries


def runs(entries: Sequence[LogEntry]) -> list[list[LogEntry]]:
    """Split the log into builds: a build's times start again from zero.

    Ninja writes a line when a command finishes, so within one build the
    end times never decrease; a smaller end time starts the next build.
    """
    builds: list[list[LogEntry]] = []
    for entry in entries:
        if not builds or entry.end_ms < builds[-1][-1].end_ms:
            builds.append([])
        builds[-1].append(entry)
    return builds


def steps(build: Iterable[LogEntry]) -> list[Step]:
    """One Step per command: a command with two outputs has two lines."""
    grouped: dict[tuple[int, int, str], list[str]] = {}
    for entry in build:
        key = (entry.start_ms, entry.end_ms, entry.command_hash)
        grouped.setdefault(key, []).append(entry.output)
    return [
        Step(tuple(sorted(outputs)), start, end)
        for (start, end, _), outputs in grouped.items()
    ]


# --8<-- [end:read]
