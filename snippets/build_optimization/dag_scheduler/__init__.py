"""Ready-set DAG scheduler: run a build graph as parallel as its edges allow.

One coordinator owns a `graphlib.TopologicalSorter`. It submits the nodes that
`get_ready()` returns to an executor, waits for the first step to finish, and
marks that node `done()`, which may make its dependents ready. Workers only run
steps; they never touch the sorter. So:

* a step starts only after every one of its predecessors finished successfully;
* a cycle is reported by `prepare()` before any step runs;
* the first failure stops the build: nothing new starts, queued steps are
  cancelled, and the report names every step that never ran.

The same coordinator drives a `ThreadPoolExecutor` (steps that wait on a
subprocess, such as a compiler) or a `ProcessPoolExecutor` (CPU-bound steps
written in Python).
"""

from snippets.build_optimization.dag_scheduler.scheduler import (
    BuildReport,
    all_nodes,
    run_graph,
)
from snippets.build_optimization.dag_scheduler.steps import (
    CompileStep,
    DigestStep,
    StepFailed,
)

__all__ = [
    "BuildReport",
    "CompileStep",
    "DigestStep",
    "StepFailed",
    "all_nodes",
    "run_graph",
]
