"""Build steps holding job slots: one step, or many commands in parallel."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from snippets.build_optimization.job_slot_budget.slots import SlotPool

__all__ = ["STEP_SLOT_TIMEOUT", "run_jobs", "run_step"]

# --8<-- [start:leak]
STEP_SLOT_TIMEOUT = 1.0  # seconds; a real build waits as long as a step takes


def run_step_leaky(
    slots: SlotPool, prepare: Callable[[], None], run: Callable[[], None]
) -> None:
    """The broken version: an exception in `prepare` keeps the slot forever."""
    token = slots.acquire(timeout=STEP_SLOT_TIMEOUT)
    prepare()  # raises -> the release below never runs
    run()
    slots.release(token)


def run_step(
    slots: SlotPool, prepare: Callable[[], None], run: Callable[[], None]
) -> None:
    """Hold a slot for one step; `slot()` returns it in `finally`."""
    with slots.slot(timeout=STEP_SLOT_TIMEOUT):
        prepare()
        run()


# --8<-- [end:leak]


# --8<-- [start:driver]
def run_jobs(
    slots: SlotPool, commands: Sequence[Sequence[str]], slot_timeout: float
) -> list[int]:
    """Run commands in parallel, each while holding one slot; return exit codes.

    Threads are cheap; the slots, not the thread count, bound the parallelism.
    Children do not inherit the pipe descriptors (`close_fds` is the default):
    a child runs inside the slot this driver holds for it.
    """

    def run_one(command: Sequence[str]) -> int:
        with slots.slot(timeout=slot_timeout):
            return subprocess.run(command, check=False).returncode

    with ThreadPoolExecutor(max_workers=max(1, len(commands))) as pool:
        return list(pool.map(run_one, commands))


# --8<-- [end:driver]
