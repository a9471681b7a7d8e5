"""Tests for snippets/build_optimization/structured_cancellation.py.

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
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from snippets.build_optimization.structured_cancellation import (
    Build,
    Step,
    StepFailed,
    build_and_report,
    demo_steps,
    gather_build,
    leader_step,
    naive_step,
    prepare,
)
from tests.conftest import ROOT, OutputCheck

MODULE = "snippets.build_optimization.structured_cancellation"

GRACE = 0.5
LATER = 1.0  # "still running 1 s after the driver returned"


@dataclass
class Tree:
    """The output directory of one build, and the processes its steps started."""

    out: Path

    def pids(self) -> dict[str, int]:
        """Process name -> PID, from the files each process writes at start."""
        found = {}
        for path in (self.out / "pids").iterdir():
            name, _, pid = path.name.rpartition(".")
            found[name] = int(pid)
        return found

    def running(self) -> list[str]:
        """Recorded processes still executing (a zombie has stopped)."""
        return sorted(n for n, pid in self.pids().items() if self._ours(pid))

    def _ours(self, pid: int) -> bool:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        state = stat.rpartition(")")[2].split()[0]
        # The output path on the command line guards against a reused PID.
        return state not in ("Z", "X") and str(self.out).encode() in cmdline

    def objects(self) -> int:
        return sum(1 for _ in (self.out / "obj").iterdir())

    def still_running_after(self, seconds: float) -> list[str]:
        """Wait up to `seconds` for every process to end; return those left."""
        deadline = time.monotonic() + seconds
        while (left := self.running()) and time.monotonic() < deadline:
            time.sleep(0.02)
        return left

    def kill_leftovers(self) -> None:
        for name in self.running():
            os.kill(self.pids()[name], signal.SIGKILL)


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Tree]:
    prepare(tmp_path)
    tree = Tree(tmp_path)
    try:
        yield tree
    finally:
        tree.kill_leftovers()  # the orphans of the runs without the pattern


@dataclass
class Observation:
    error: str
    running_later: list[str]
    wrote_after_return: bool


async def observe(tree: Tree, driver: Callable[[], Awaitable[None]]) -> Observation:
    """Run a driver until it raises, then watch the output tree for a while."""
    try:
        await driver()
    except StepFailed:  # gather raises the step's own exception
        error = "StepFailed"
    except ExceptionGroup as group:
        assert group.split(StepFailed)[1] is None  # nothing but StepFailed
        error = "ExceptionGroup[StepFailed]"
    else:
        raise AssertionError("the build was expected to fail")
    at_return = tree.objects()
    left = await asyncio.to_thread(tree.still_running_after, LATER)
    if left:  # something may still write: wait until it has, bounded
        deadline = time.monotonic() + 5
        while tree.objects() == at_return and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    wrote = tree.objects() > at_return
    for task in asyncio.all_tasks() - {asyncio.current_task()}:
        task.cancel()  # gather's abandoned steps; their processes stay
    return Observation(error, left, wrote)


def in_task_group(
    runner: Callable[[Step, Path], Coroutine[Any, Any, None]],
    steps: list[Step],
    logs: Path,
) -> Callable[[], Awaitable[None]]:
    async def driver() -> None:
        async with asyncio.TaskGroup() as group:
            for step in steps:
                group.create_task(runner(step, logs))

    return driver


def drivers(tree: Tree) -> dict[str, Callable[[], Awaitable[None]]]:
    steps, logs = demo_steps(tree.out), tree.out / "logs"

    async def leader(step: Step, log_dir: Path) -> None:
        await leader_step(step, log_dir, grace=GRACE)

    return {
        "asyncio.gather": lambda: gather_build(steps, logs),
        "TaskGroup, process not stopped": in_task_group(naive_step, steps, logs),
        "TaskGroup, terminate() the step": in_task_group(leader, steps, logs),
        "TaskGroup, kill the process group": lambda: Build(logs, GRACE).run(steps),
    }


EXPECTED = {  # label -> (error, processes still running, writes after return)
    "asyncio.gather": ("StepFailed", 6, True),
    "TaskGroup, process not stopped": ("ExceptionGroup[StepFailed]", 6, True),
    "TaskGroup, terminate() the step": ("ExceptionGroup[StepFailed]", 3, True),
    "TaskGroup, kill the process group": ("ExceptionGroup[StepFailed]", 0, False),
}


def test_only_the_process_group_kill_leaves_no_orphans(
    tmp_path: Path, expected_output: OutputCheck
) -> None:
    header = f"{'driver':<35}{'error raised':<28}{'running 1 s later':<19}writes"
    rows = [header]
    for index, label in enumerate(EXPECTED):
        tree = Tree(tmp_path / f"run{index}")
        prepare(tree.out)
        try:
            seen = asyncio.run(observe(tree, drivers(tree)[label]))
        finally:
            tree.kill_leftovers()
        print(label, seen)
        error, count, wrote = EXPECTED[label]
        assert seen.error == error
        assert len(seen.running_later) == count
        assert seen.wrote_after_return is wrote
        if label.startswith("TaskGroup, terminate"):
            assert all(name.endswith("-helper") for name in seen.running_later)
        writes = "yes" if wrote else "none"
        rows.append(f"{label:<35}{error:<28}{len(seen.running_later):<19}{writes}")
    text = "\n".join(rows)
    print(text)
    expected_output("build_optimization/structured_cancellation.orphans", text)


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


def test_demo_report(
    tree: Tree, capsys: pytest.CaptureFixture[str], expected_output: OutputCheck
) -> None:
    build = Build(tree.out / "logs", grace=GRACE)
    started = time.monotonic()
    status = asyncio.run(build_and_report(build, demo_steps(tree.out)))
    elapsed = time.monotonic() - started
    captured = capsys.readouterr()
    print(captured.err + captured.out, f"took {elapsed:.2f} s")
    assert status == 1
    assert elapsed < GRACE + 5  # the SIGKILL came after the grace, not later
    assert tree.still_running_after(2) == []
    expected_output(
        "build_optimization/structured_cancellation.demo", captured.err + captured.out
    )


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
    command = [sys.executable, "-m", MODULE, "demo", str(tree.out)]
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


def test_demo_runs_as_a_command(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snippets.build_optimization.structured_cancellation",
            "demo",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 1
    assert "link       killed: SIGKILL after 0.5 s grace" in result.stdout
    assert Tree(tmp_path).still_running_after(2) == []
