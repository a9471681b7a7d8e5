"""One build step holding one job slot."""

from __future__ import annotations

from collections.abc import Callable

from snippets.build_optimization.job_slot_budget.slots import SlotPool

__all__ = ["STEP_SLOT_TIMEOUT", "run_step"]

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
