"""A build as a command-line tool: one line per step, Ctrl-C, exit status."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Sequence

from snippets.build_optimization.structured_cancellation.build import (
    Build,
    Step,
    StepFailed,
)

__all__ = ["build_and_report", "run_until_interrupted"]


# --8<-- [start:report]
async def build_and_report(build: Build, steps: Sequence[Step]) -> int:
    """Run a build and print one line per step; the exit status for a CLI."""
    status = 0
    try:
        await build.run(steps)
    except* StepFailed as failures:
        for failure in failures.exceptions:
            print(f"error: {failure}", file=sys.stderr)
        status = 1
    finally:  # also when the build itself is cancelled (Ctrl-C)
        for step in steps:
            print(f"{step.name:<10} {build.outcomes.get(step.name, 'running')}")
    return status


# --8<-- [end:report]


# --8<-- [start:ctrl-c]
async def run_until_interrupted(build: Build, steps: Sequence[Step]) -> int:
    """`build_and_report`, where Ctrl-C stops the build; 130 if it did.

    The first Ctrl-C cancels the build: SIGTERM, grace period, SIGKILL, as
    for a failure. The second one kills every step's process group at once.
    The handler runs in the event loop, so nothing is interrupted half-way.
    """
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    presses = 0

    def on_sigint() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            main.cancel()
        else:
            build.kill_now()

    loop.add_signal_handler(signal.SIGINT, on_sigint)
    try:
        return await build_and_report(build, steps)
    except asyncio.CancelledError:
        if presses == 0:
            raise  # cancelled by something else: not ours to swallow
        main.uncancel()
        return 130
    finally:
        loop.remove_signal_handler(signal.SIGINT)


# --8<-- [end:ctrl-c]
