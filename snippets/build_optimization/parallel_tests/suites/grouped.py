"""Two tests that must not run at the same time (copied as test_db.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from snippets.build_optimization.parallel_tests import worker_name

SHARED = Path(os.environ["SUITE_SHARED"])


def ran_on() -> None:
    """Leave the worker's name behind, one file per worker."""
    (SHARED / f"ran-on-{worker_name()}").touch()


# --8<-- [start:tests]
@pytest.mark.xdist_group("db")
def test_migrate() -> None:
    ran_on()


@pytest.mark.xdist_group("db")
def test_rollback() -> None:
    ran_on()


# --8<-- [end:tests]
