"""Stop a failing build at once, and leave no step or subprocess behind.

When one step of a parallel build fails, the driver must stop the steps still
running, and the processes those steps started, before it reports the failure.
Two things make that happen:

* `asyncio.TaskGroup` (Python 3.11): the first task that fails cancels the
  others, the group waits until they have finished, and the failure surfaces
  in an `ExceptionGroup`. `asyncio.gather` propagates the first exception but
  leaves the other awaitables running.
* One process group per step (`start_new_session=True`): a cancelled step
  sends SIGTERM to the whole group, the compiler driver and whatever it
  started, waits a grace period, then sends SIGKILL. Killing only the process
  you started leaves its children running.

`Build` runs steps that way; `build_and_report` and `run_until_interrupted`
turn a build into a command-line tool's exit status.
"""

from snippets.build_optimization.structured_cancellation.build import (
    Build,
    Step,
    StepFailed,
    signal_group,
    stop_group,
)
from snippets.build_optimization.structured_cancellation.report import (
    build_and_report,
    run_until_interrupted,
)

__all__ = [
    "Build",
    "Step",
    "StepFailed",
    "build_and_report",
    "run_until_interrupted",
    "signal_group",
    "stop_group",
]
