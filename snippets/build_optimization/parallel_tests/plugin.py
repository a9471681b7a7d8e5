"""``pytest -n auto`` sized to the CPU quota, not to the machine.

pytest-xdist 3.8.0 counts CPUs for ``-n auto`` with psutil when it is
installed (physical cores of the whole machine), otherwise with
``len(os.sched_getaffinity(0))``. Neither sees a container's CPU quota. Load
this module as a plugin (``pytest_plugins`` in the root conftest, or
``-p``) and ``-n auto`` starts as many workers as the quota allows.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from snippets.container_orchestration.cpu_quota_sizing import cpu_budget

__all__ = ["auto_workers", "pytest_xdist_auto_num_workers"]


# --8<-- [start:hook]
def auto_workers(root: Path = Path("/")) -> int:
    """The affinity count, capped by the cgroup CPU quota (rounded down).

    ``PYTHON_CPU_COUNT`` (or ``-X cpu_count``) overrides both; ``root`` is
    where ``/proc`` and ``/sys`` are.
    """
    return cpu_budget(root).cpus


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own implementation
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """The worker count for ``-n auto`` and ``-n logical``."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # an explicit number: pytest-xdist's hook reads it
    return auto_workers()


# --8<-- [end:hook]
