"""Names of one's own for each pytest-xdist worker.

pytest-xdist sets ``PYTEST_XDIST_WORKER`` (``gw0``, ``gw1``, …) in each worker
process before the worker reads its configuration, so a settings module or a
conftest can read it at import time, not only inside a fixture.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["worker_name", "worker_path"]


# --8<-- [start:names]
def worker_name() -> str:
    """This process's worker id: ``gw0``, ``gw1``, … or ``master`` without -n.

    The same value as pytest-xdist's ``worker_id`` fixture, read from the
    environment so that code outside a fixture can use it too.
    """
    return os.environ.get("PYTEST_XDIST_WORKER", "master")


def worker_path(path: Path) -> Path:
    """``report.json`` becomes ``report-gw1.json``: one file per worker.

    For a path your code under test reads from a setting; for files the test
    owns, ``tmp_path`` is already unique per test and per worker.
    """
    return path.with_name(f"{path.stem}-{worker_name()}{path.suffix}")


# --8<-- [end:names]
