"""The cases the acknowledge-fast page shows.

``python -m snippets.webhook_design.acknowledge_fast.demo slow`` sends one
delivery to a receiver whose handler outlasts the sender's timeout, first
`SyncReceiver`, then the inbox. ``... demo crash`` kills each receiver process
with SIGKILL right after its 2xx and restarts it.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from snippets.support.cases import run_cases
from snippets.support.webhook_design_ack import (
    CrashResult,
    SlowHandlerResult,
    crash_after_ack,
    slow_handler,
)

__all__: list[str] = []


def format_slow_handler(results: list[SlowHandlerResult]) -> list[str]:
    """The lines the page shows for `slow_handler` runs."""
    names = {"sync": "work, then answer", "inbox": "inbox, then answer"}
    first = results[0]
    lines = [
        f"sender: {first.timeout} s timeout per attempt, up to"
        f" {first.max_attempts} attempts; handler: {first.work} s"
    ]
    for result in results:
        seen = ", ".join(str(a) for a in result.attempts)
        lines.append(
            f"{names[result.receiver]:<20} sender saw: {seen:<26}"
            f" handler ran {result.effects}x"
        )
    return lines


def format_crash(results: list[CrashResult]) -> list[str]:
    """The lines the page shows for `crash_after_ack` runs."""
    names = {"memory": "202, queue in memory", "inbox": "inbox, then 202"}
    return [
        f"{names[r.mode]:<21} sender saw: {r.sender_saw}  kill -9, restart:"
        f" recovered {r.recovered}, handler ran {r.effects}x"
        for r in results
    ]


def show_slow() -> list[str]:
    with tempfile.TemporaryDirectory() as name:
        results = [slow_handler(kind, Path(name)) for kind in ("sync", "inbox")]
    return format_slow_handler(results)


def show_crash() -> list[str]:
    with tempfile.TemporaryDirectory() as name:
        results = [crash_after_ack(mode, Path(name)) for mode in ("memory", "inbox")]
    return format_crash(results)


if __name__ == "__main__":
    sys.exit(run_cases({"slow": show_slow, "crash": show_crash}))
