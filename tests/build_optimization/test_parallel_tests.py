"""Tests for snippets/build_optimization/parallel_tests/.

The real pytest and pytest-xdist (the test lock's versions) run small suites
copied from suites/ into tmp_path, in subprocesses. A rendezvous (a folder
each worker adds a file to and waits until both files are there) makes the
two workers use a shared file and a shared port at the same moment on every
run, so the collisions are certain, not likely; the two bind in turns, so
the second always fails at bind, not in listen(). Everything asserted is a
count; nothing is timed.
"""

from __future__ import annotations

import platform
import threading
from importlib.metadata import version
from pathlib import Path

import pytest

from snippets.build_optimization.parallel_tests import (
    auto_workers,
    once_per_run,
    pytest_xdist_auto_num_workers,
    worker_name,
    worker_path,
)
from snippets.build_optimization.parallel_tests.demo import (
    ONE_CPU_QUOTA,
    auto_counts,
    break_runs,
    group_runs,
)
from snippets.support.build_optimization_xdist import Run
from tools.errors import ErrorRecorder

PYTEST = version("pytest")
XDIST = version("pytest-xdist")


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    return break_runs(tmp_path_factory.mktemp("break"))


@pytest.fixture(scope="module")
def groups(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    return group_runs(tmp_path_factory.mktemp("groups"))


def outcomes(run: Run, test: str) -> tuple[int, int]:
    return run.count(test, "passed"), run.count(test, "failed")


def test_a_fixed_file_and_port_pass_serially_and_collide_under_n2(
    broken: dict[str, Run], error_record: ErrorRecorder
) -> None:
    serial, parallel = broken["serial"], broken["-n 2"]
    assert serial.returncode == 0, serial.output
    assert set(serial.outcomes.values()) == {"passed"} and len(serial.outcomes) == 6
    assert "created: 2/2 workers" in parallel.output
    assert outcomes(parallel, "test_report_round_trip") == (1, 1)  # last writer wins
    assert outcomes(parallel, "test_server_port") == (1, 1)  # first bind wins
    assert outcomes(parallel, "test_database") == (2, 0)
    messages = {node.split("::")[1]: m for node, m in parallel.messages.items()}
    port = messages["test_server_port"].splitlines()[0]
    error_record(
        port,
        id="address-in-use",
        component="CPython",
        version=platform.python_version(),
    )
    assert port.startswith("OSError: [Errno 98] Address already in use")
    assert "while attempting to bind on address ('127.0.0.1'," in port
    assertion = messages["test_report_round_trip"].splitlines()[0]
    mine = "test_two" if "== 'test_two'" in assertion else "test_one"
    other = {"test_one": "test_two", "test_two": "test_one"}[mine]
    assert assertion == f"AssertionError: assert '{other}' == '{mine}'"


def test_per_worker_names_and_kernel_ports_hold_under_n2(
    broken: dict[str, Run],
) -> None:
    fixed = broken["-n 2, fixed"]
    assert fixed.returncode == 0, fixed.output
    assert "created: 2/2 workers" in fixed.output
    assert sorted(fixed.outcomes.values()) == ["passed"] * 6


def test_a_session_fixture_runs_once_per_worker_and_once_with_the_lock(
    broken: dict[str, Run],
) -> None:
    assert broken["serial"].setups == 1
    assert broken["-n 2"].setups == 2  # scope="session": one session per worker
    assert broken["-n 2, fixed"].setups == 1  # once_per_run under a file lock


def test_loadgroup_loses_its_groups_and_loadfile_keeps_a_module_together(
    groups: dict[str, Run],
) -> None:
    loadgroup, loadfile = groups["loadgroup"], groups["loadfile"]
    for run in (loadgroup, loadfile):
        assert sorted(run.outcomes.values()) == ["passed", "passed"], run.output
    # Observed with pytest 9.2.0 and pytest-xdist 3.8.0: the worker's rename
    # (nodeid + "@db") does not stick, so each test is a unit of its own.
    assert (PYTEST, XDIST) == ("9.2.0", "3.8.0"), "re-check the loadgroup finding"
    assert not any("@db" in node for node in loadgroup.outcomes)
    assert len(loadgroup.ran_on) == 2  # the "db" group ran on both workers
    assert len(loadfile.ran_on) == 1  # one module, one worker


def test_n_auto_counts_the_affinity_mask_and_the_plugin_the_budget(
    tmp_path: Path,
) -> None:
    # The full table is the `auto` output, checked by tests/test_outputs.py.
    only = {"-n auto", "-n auto, affinity 1 CPU", "quota plugin, PYTHON_CPU_COUNT=1"}
    assert auto_counts(tmp_path, only) == {
        "-n auto": 2,
        "-n auto, affinity 1 CPU": 1,  # len(os.sched_getaffinity(0))
        "quota plugin, PYTHON_CPU_COUNT=1": 1,
    }


def test_the_quota_plugin_caps_auto_at_the_quota(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTHON_CPU_COUNT", raising=False)
    assert auto_workers(ONE_CPU_QUOTA.build(tmp_path)) == 1


def test_the_quota_plugin_leaves_an_explicit_number_to_pytest_xdist(
    monkeypatch: pytest.MonkeyPatch, pytestconfig: pytest.Config
) -> None:
    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "3")
    assert pytest_xdist_auto_num_workers(pytestconfig) is None


def test_once_per_run_creates_once_for_many_callers(tmp_path: Path) -> None:
    calls: list[str] = []
    results: list[object] = []
    start = threading.Barrier(4)

    def create() -> dict[str, str]:
        calls.append("created")
        return {"url": "postgresql://127.0.0.1/test_db"}

    def worker() -> None:
        start.wait(timeout=10)
        results.append(once_per_run(tmp_path, "db", create))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert calls == ["created"]
    assert results == [{"url": "postgresql://127.0.0.1/test_db"}] * 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db.json", "db.lock"]


def test_a_failed_setup_is_not_cached_and_the_next_caller_retries(
    tmp_path: Path,
) -> None:
    def broken_setup() -> object:
        raise ConnectionRefusedError("database not up yet")

    with pytest.raises(ConnectionRefusedError):
        once_per_run(tmp_path, "db", broken_setup)
    assert not (tmp_path / "db.json").exists()
    assert once_per_run(tmp_path, "db", lambda: {"ok": True}) == {"ok": True}


def test_worker_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    assert worker_name() == "master"
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    assert worker_path(Path("/tmp/report.json")) == Path("/tmp/report-gw1.json")
