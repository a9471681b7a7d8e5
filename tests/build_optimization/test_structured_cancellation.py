"""Tests for snippets/build_optimization/structured_cancellation/.

Every step is a real process tree: a stand-in compiler driver that starts a
helper process (as `gcc` starts `cc1`) and both write object files into the
output directory. The failing step fails only once the other steps and their
helpers are running, so each run has the same processes in flight. After the
driver returns, the test reads `/proc` for the processes the steps recorded
and counts the object files that appear.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from snippets.build_optimization.structured_cancellation import (
    Build,
    Step,
    StepFailed,
    build_and_report,
)
from snippets.build_optimization.structured_cancellation.demo import (
    GRACE,
    drivers,
)
from snippets.support.build_optimization_steps import (
    Tree,
    demo_steps,
    observe,
    prepare,
)
from tests.conftest import ROOT

STEPS = "snippets.support.build_optimization_steps"
LATER = 1.0  # "still running 1 s after the driver returned"


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Tree]:
    prepare(tmp_path)
    tree = Tree(tmp_path)
    try:
        yield tree
    finally:
        tree.kill_leftovers()  # the orphans of the runs without the pattern


EXPECTED = {  # label -> (error, processes still running, writes after return)
    "asyncio.gather": ("StepFailed", 6, True),
    "TaskGroup, process not stopped": ("ExceptionGroup[StepFailed]", 6, True),
    "TaskGroup, terminate() the step": ("ExceptionGroup[StepFailed]", 3, True),
    "TaskGroup, kill the process group": ("ExceptionGroup[StepFailed]", 0, False),
}


def test_only_the_process_group_kill_leaves_no_orphans(tmp_path: Path) -> None:
    for index, label in enumerate(EXPECTED):
        tree = Tree(tmp_path / f"run{index}")
        prepare(tree.out)
        try:
            seen = asyncio.run(observe(tree, drivers(tree.out)[label], LATER))
        finally:
            tree.kill_leftovers()
        print(label, seen)
        error, count, wrote = EXPECTED[label]
        assert seen.error == error
        assert len(seen.running_later) == count
        assert seen.wrote_after_return is wrote
        if label.startswith("TaskGroup, terminate"):
            assert all(name.endswith("-helper") for name in seen.running_later)


def test_the_failure_surfaces_in_an_exception_group(tree: Tree) -> None:
    build = Build(tree.out / "logs", grace=GRACE)
    with pytest.raises(ExceptionGroup) as caught:
        asyncio.run(build.run(demo_steps(tree.out)))
    failures = caught.value.exceptions
    assert len(failures) == 1
    assert isinstance(failures[0], StepFailed)
    assert (failures[0].name, failures[0].returncode) == ("compile-a", 1)
    assert "expected ';'" in str(failures[0])
    assert tree.still_running_after(2) == []


def test_demo_report(tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    build = Build(tree.out / "logs", grace=GRACE)
    started = time.monotonic()
    status = asyncio.run(build_and_report(build, demo_steps(tree.out)))
    elapsed = time.monotonic() - started
    captured = capsys.readouterr()
    print(captured.err + captured.out, f"took {elapsed:.2f} s")
    assert status == 1
    assert elapsed < GRACE + 5  # the SIGKILL came after the grace, not later
    assert tree.still_running_after(2) == []
    assert captured.err.startswith("error: compile-a failed with exit status 1")
    assert captured.out.splitlines() == [
        "compile-a  failed: exit status 1",
        "compile-b  stopped: SIGTERM",
        "compile-c  stopped: SIGTERM",
        f"link       killed: SIGKILL after {GRACE:g} s grace",
    ]


# --------------------------------------------------------------------------- #
# The same cleanup for a deadline, a second cancellation, a successful step
# --------------------------------------------------------------------------- #


def long_steps(out: Path) -> list[Step]:
    """The demo without its failing step: everything would run for 20 s."""
    return demo_steps(out)[1:]


def test_a_deadline_stops_every_step(tree: Tree) -> None:
    build = Build(tree.out / "logs", grace=GRACE)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        asyncio.run(build.run(long_steps(tree.out), deadline=2.0))
    assert time.monotonic() - started < 2.0 + GRACE + 3
    assert sorted(build.outcomes) == ["compile-b", "compile-c", "link"]
    assert all(o.startswith(("stopped", "killed")) for o in build.outcomes.values())
    assert tree.still_running_after(2) == []


def test_ctrl_c_stops_gracefully_then_at_once(tree: Tree) -> None:
    # The first SIGINT cancels the build: SIGTERM to every step, and `link`
    # ignores it, so the driver waits out a 30 s grace. The second SIGINT
    # kills every process group at once.
    command = [sys.executable, "-m", STEPS, "driver", str(tree.out)]
    driver = subprocess.Popen(
        [*command, "--grace", "30", "--no-failure"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while len(os.listdir(tree.out / "ready")) < 3:
            assert time.monotonic() < deadline, "the steps did not start"
            time.sleep(0.01)
        started = time.monotonic()
        driver.send_signal(signal.SIGINT)
        while "compile-b" in tree.running() or "compile-c" in tree.running():
            assert time.monotonic() < deadline, "SIGTERM did not stop compile-b/c"
            time.sleep(0.01)
        assert "link" in tree.running()  # it ignores SIGTERM: the grace runs
        driver.send_signal(signal.SIGINT)
        out, err = driver.communicate(timeout=10)
    finally:
        driver.kill()
    print(out, err)
    assert driver.returncode == 130
    assert time.monotonic() - started < 10  # not the 30 s grace
    assert tree.still_running_after(2) == []
    assert "compile-b  stopped: SIGTERM" in out
    assert "link       stopped: SIGKILL" in out


def test_a_successful_step_does_not_leave_its_background_child(tree: Tree) -> None:
    pidfile = tree.out / "bg.pid"
    shell = Step("codegen", ("sh", "-c", f"sleep 30 & echo $! > {pidfile}"))
    build = Build(tree.out / "logs", grace=GRACE)
    tidy = Step("version", ("sh", "-c", "exit 0"))
    asyncio.run(build.run([shell, tidy]))
    # Killed, and said so: a tool that meant to leave a server behind shows up.
    assert build.outcomes == {
        "codegen": "ok, killed what it left running",
        "version": "ok",
    }
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.02)
    assert not alive(pid)  # the step's group ended with the step


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")
