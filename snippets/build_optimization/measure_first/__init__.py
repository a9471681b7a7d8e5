"""Measure a build before you make it faster.

`read_ninja_log`, `runs` and `steps` read Ninja's ``.ninja_log``;
`ninja_graph`, `critical_path` and `profile` set the total work against the
critical path; `trace_reasons` and `remake_reasons` read why GNU make ran a
recipe; `durations_report` and `slowest_in_junit` find the slow tests.
"""

from snippets.build_optimization.measure_first.build_graph import (
    Profile,
    bottleneck,
    critical_path,
    ninja_graph,
    profile,
)
from snippets.build_optimization.measure_first.make_trace import (
    Reason,
    remake_reasons,
    trace_reasons,
)
from snippets.build_optimization.measure_first.ninja_log import (
    LogEntry,
    Step,
    read_ninja_log,
    runs,
    steps,
)
from snippets.build_optimization.measure_first.pytest_times import (
    Phase,
    TestTime,
    durations_report,
    slowest_in_junit,
)

__all__ = [
    "LogEntry",
    "Phase",
    "Profile",
    "Reason",
    "Step",
    "TestTime",
    "bottleneck",
    "critical_path",
    "durations_report",
    "ninja_graph",
    "profile",
    "read_ninja_log",
    "remake_reasons",
    "runs",
    "slowest_in_junit",
    "steps",
    "trace_reasons",
]
