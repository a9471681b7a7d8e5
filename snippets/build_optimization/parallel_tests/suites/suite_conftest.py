"""conftest.py of the suites: a rendezvous that makes collisions certain, and
a session-scoped "database" set up naively and once per run.

``SUITE_SHARED`` is a directory the run's processes share (a stand-in for
``/tmp`` or the database server); ``SUITE_PORT`` a fixed TCP port.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from snippets.build_optimization.parallel_tests import once_per_run, worker_name

SHARED = Path(os.environ["SUITE_SHARED"])


@pytest.fixture
def rendezvous() -> Callable[[str], None]:
    """Wait until every worker reaches the same point (no-op without -n).

    Two tests on two workers then use the shared resource at the same time
    on every run, not one run in ten.
    """

    def meet(name: str) -> None:
        if workers() < 2:
            return
        here = SHARED / f"rendezvous-{name}"
        here.mkdir(exist_ok=True)
        (here / worker_name()).touch()
        wait_for(name, lambda: len(list(here.iterdir())) >= workers())

    return meet


@pytest.fixture
def take_turns(
    rendezvous: Callable[[str], None],
) -> Callable[[str], AbstractContextManager[None]]:
    """Run a block in one worker after the other: gw1 starts its block when
    gw0 has finished its own, and no worker leaves until all have finished.

    Two sockets that bind one port at the same instant can both succeed
    (``create_server`` sets SO_REUSEADDR) and fail later, in ``listen()``;
    in turns, the second always fails at ``bind()``, while the first listens.
    """

    @contextmanager
    def turn(name: str) -> Iterator[None]:
        if workers() < 2:
            yield
            return
        done = SHARED / f"turns-{name}"
        done.mkdir(exist_ok=True)
        earlier = {f"gw{n}" for n in range(int(worker_name().removeprefix("gw")))}
        wait_for(name, lambda: earlier <= {p.name for p in done.iterdir()})
        try:
            yield
        finally:
            (done / worker_name()).touch()
            rendezvous(f"{name}-all-done")

    return turn


def workers() -> int:
    return int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))


def wait_for(name: str, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not ready():
        if time.monotonic() > deadline:
            pytest.fail(f"{name}: the other worker never came")
        time.sleep(0.01)


def create_database() -> dict[str, Any]:
    """The expensive setup; each call leaves a line in setups.log."""
    with (SHARED / "setups.log").open("a") as log:
        log.write(f"{worker_name()}\n")
    return {"name": "test_db", "created_by": worker_name()}


# --8<-- [start:naive]
@pytest.fixture(scope="session")
def database_per_worker() -> dict[str, Any]:
    return create_database()  # runs once in each worker


# --8<-- [end:naive]


# --8<-- [start:once]
@pytest.fixture(scope="session")
def database(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    run = tmp_path_factory.getbasetemp()
    if worker_name() != "master":
        run = run.parent  # the run's folder, above popen-gw0, popen-gw1, ...
    return once_per_run(run, "database", create_database)  # type: ignore[no-any-return]


# --8<-- [end:once]


def pytest_report_header(config: pytest.Config) -> str:
    """The workers pytest-xdist chose, shown even with --collect-only."""
    return f"xdist workers: {len(config.getoption('tx'))}"
