"""Tests that stay correct under pytest-xdist.

`worker_name` and `worker_path` give each worker names of its own for the
resources tests share; `once_per_run` runs a session-scoped setup once per
run instead of once per worker; `pytest_xdist_auto_num_workers` (in
`plugin`, loaded as a pytest plugin) sizes ``-n auto`` to the CPU quota.
"""

from snippets.build_optimization.parallel_tests.isolation import (
    worker_name,
    worker_path,
)
from snippets.build_optimization.parallel_tests.once import once_per_run
from snippets.build_optimization.parallel_tests.plugin import (
    auto_workers,
    pytest_xdist_auto_num_workers,
)

__all__ = [
    "auto_workers",
    "once_per_run",
    "pytest_xdist_auto_num_workers",
    "worker_name",
    "worker_path",
]
