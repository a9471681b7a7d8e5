"""One parallelism budget for every level of a build: a shared job-slot pool.

A build driver that runs a pool of workers, each of which runs a tool with a
pool of its own, multiplies parallelism: N targets times M actions on an
N-core machine. The cure is one pool of job slots that every level draws from.

* `LocalSlots` is the in-process pool: a `threading.BoundedSemaphore` that you
  create once and pass down to every level.
* `Jobserver` joins GNU make's pool: the last `--jobserver-auth=` in
  `MAKEFLAGS`, either `fifo:PATH` (make 4.4 and later) or the pipe form `R,W`.
  Every command make starts already holds one implicit slot; each further job
  costs one token read from the jobserver and written back when it ends.
* `slots_from_environment` picks one of them, and runs one job at a time when
  make's jobserver is announced but cannot be reached.

`run_step` holds a slot for one step and gives it back however the step
ends; `snippets.build_optimization.job_slot_budget.driver` is a small build
driver that make can run as a recipe.
"""

from snippets.build_optimization.job_slot_budget.jobserver import (
    Jobserver,
    JobserverUnavailable,
    MakeFlags,
    parse_makeflags,
    slots_from_environment,
)
from snippets.build_optimization.job_slot_budget.slots import (
    LocalSlots,
    SlotPool,
    Token,
    within_budget,
)
from snippets.build_optimization.job_slot_budget.steps import (
    STEP_SLOT_TIMEOUT,
    run_jobs,
    run_step,
)

__all__ = [
    "STEP_SLOT_TIMEOUT",
    "Jobserver",
    "JobserverUnavailable",
    "LocalSlots",
    "MakeFlags",
    "SlotPool",
    "Token",
    "parse_makeflags",
    "run_jobs",
    "run_step",
    "slots_from_environment",
    "within_budget",
]
