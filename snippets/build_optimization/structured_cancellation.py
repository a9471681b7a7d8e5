"""Stop a failing build at once, and leave no step or subprocess behind.

When one step of a parallel build fails, the driver must stop the steps still
running, and the processes those steps started, before it reports the failure.
Two things make that happen:

* `asyncio.TaskGroup` (Python 3.11): the first task that fails cancels the
  others, the group waits until they have finished, and the failure surfaces
  in an `ExceptionGroup`. `asyncio.gather` propagates the first exception but
  leaves the other awaitables running.
* One process group per step (`start_new_session=True`): a cancelled step
  sends SIGTERM to the whole group, the compiler driver and whatever it
  started, waits a grace period, then sends SIGKILL. Killing only the process
  you started leaves its children running.

`Build` runs steps that way. The module also runs as a stand-in compiler
(`python -m ... step`) that starts a helper process and writes object files,
which the tests use to count orphans.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

MODULE = "snippets.build_optimization.structured_cancellation"
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Step:
    """One build step: a command line.

    Attributes:
        name: Unique within a build; names the step's log file.
        argv: The program and its arguments.
        cwd: Working directory, or None for the driver's.
    """

    name: str
    argv: tuple[str, ...]
    cwd: Path | None = None


class StepFailed(Exception):
    """A step exited with a non-zero status."""

    def __init__(self, name: str, returncode: int, last_line: str) -> None:
        super().__init__(f"{name} failed with exit status {returncode}: {last_line}")
        self.name = name
        self.returncode = returncode


def _last_line(log: Path) -> str:
    lines = log.read_text(errors="replace").strip().splitlines()
    return lines[-1] if lines else "(no output)"


# --8<-- [start:naive]
async def naive_step(step: Step, log_dir: Path) -> None:
    """Start the step and wait for it. A cancellation stops the wait only."""
    log = log_dir / f"{step.name}.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *step.argv, cwd=step.cwd, stdout=out, stderr=subprocess.STDOUT
        )
    returncode = await proc.wait()  # cancelled here: the process runs on
    if returncode != 0:
        raise StepFailed(step.name, returncode, _last_line(log))


async def gather_build(steps: Sequence[Step], log_dir: Path) -> None:
    """The first failure propagates; the other steps are not cancelled."""
    await asyncio.gather(*(naive_step(step, log_dir) for step in steps))


# --8<-- [end:naive]


# --8<-- [start:leader]
async def leader_step(step: Step, log_dir: Path, grace: float = 5.0) -> None:
    """Terminate the process you started on cancellation, and nothing else."""
    log = log_dir / f"{step.name}.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *step.argv, cwd=step.cwd, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        returncode = await proc.wait()
    except asyncio.CancelledError:
        proc.terminate()  # the compiler driver dies; its children do not
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            proc.kill()
        raise
    if returncode != 0:
        raise StepFailed(step.name, returncode, _last_line(log))


# --8<-- [end:leader]


# --8<-- [start:group]
def signal_group(pgid: int, signum: signal.Signals) -> bool:
    """Signal every process of a group; False if the group was already empty."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


async def stop_group(proc: asyncio.subprocess.Process, grace: float) -> str:
    """SIGTERM the step's process group, wait `grace` s, then SIGKILL it.

    Returns how the step ended. If this coroutine is cancelled while it
    waits, the caller's `finally` still sends SIGKILL.
    """
    signal_group(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        signal_group(proc.pid, signal.SIGKILL)
        await proc.wait()
        return f"killed: SIGKILL after {grace:g} s grace"
    code = proc.returncode
    how = signal.Signals(-code).name if code and code < 0 else f"exit status {code}"
    return f"stopped: {how}"


# --8<-- [end:group]


# --8<-- [start:build]
@dataclass
class Build:
    """Runs steps concurrently and stops all of them when one fails.

    Attributes:
        log_dir: Each step's output goes to `<log_dir>/<name>.log`.
        grace: Seconds between SIGTERM and SIGKILL for a cancelled step.
        outcomes: How each step ended, filled in as steps end.
    """

    log_dir: Path
    grace: float = 5.0
    outcomes: dict[str, str] = field(default_factory=dict)
    _groups: dict[str, int] = field(default_factory=dict, repr=False)

    async def run(self, steps: Sequence[Step], deadline: float | None = None) -> None:
        """Run every step; return when all succeeded.

        Raises:
            ExceptionGroup: Holds a `StepFailed` for each failed step; every
                other step was stopped first, its process group included.
            TimeoutError: `deadline` seconds passed; every step was stopped.
        """
        async with asyncio.timeout(deadline):
            async with asyncio.TaskGroup() as group:
                for step in steps:
                    group.create_task(self.run_step(step), name=step.name)

    # --8<-- [end:build]

    # --8<-- [start:step]
    async def run_step(self, step: Step) -> None:
        """One step in a process group of its own, which ends with the step."""
        log = self.log_dir / f"{step.name}.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                *step.argv,
                cwd=step.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,  # a file, not a pipe a grandchild could hold open
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: pgid == pid
            )
        self._groups[step.name] = proc.pid
        try:
            returncode = await proc.wait()
        except asyncio.CancelledError:
            self.outcomes[step.name] = await stop_group(proc, self.grace)
            raise
        finally:  # success too: whatever the step left in its group dies
            leftover = signal_group(proc.pid, signal.SIGKILL)
            del self._groups[step.name]
        if returncode != 0:
            self.outcomes[step.name] = f"failed: exit status {returncode}"
            raise StepFailed(step.name, returncode, _last_line(log))
        left = ", killed what it left running" if leftover else ""
        self.outcomes[step.name] = f"ok{left}"

    def kill_now(self) -> None:
        """SIGKILL every running step's process group, grace or not."""
        for pgid in list(self._groups.values()):
            signal_group(pgid, signal.SIGKILL)

    # --8<-- [end:step]


# --8<-- [start:report]
async def build_and_report(build: Build, steps: Sequence[Step]) -> int:
    """Run a build and print one line per step; the exit status for a CLI."""
    status = 0
    try:
        await build.run(steps)
    except* StepFailed as failures:
        for failure in failures.exceptions:
            print(f"error: {failure}", file=sys.stderr)
        status = 1
    finally:  # also when the build itself is cancelled (Ctrl-C)
        for step in steps:
            print(f"{step.name:<10} {build.outcomes.get(step.name, 'running')}")
    return status


# --8<-- [end:report]


# --8<-- [start:ctrl-c]
async def run_until_interrupted(build: Build, steps: Sequence[Step]) -> int:
    """`build_and_report`, where Ctrl-C stops the build; 130 if it did.

    The first Ctrl-C cancels the build: SIGTERM, grace period, SIGKILL, as
    for a failure. The second one kills every step's process group at once.
    The handler runs in the event loop, so nothing is interrupted half-way.
    """
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    presses = 0

    def on_sigint() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            main.cancel()
        else:
            build.kill_now()

    loop.add_signal_handler(signal.SIGINT, on_sigint)
    try:
        return await build_and_report(build, steps)
    except asyncio.CancelledError:
        if presses == 0:
            raise  # cancelled by something else: not ours to swallow
        main.uncancel()
        return 130
    finally:
        loop.remove_signal_handler(signal.SIGINT)


# --8<-- [end:ctrl-c]


# --8<-- [start:demo]
def demo_steps(out: Path, fail_after: int = 3) -> list[Step]:
    """Four stand-in compiler steps; `compile-a` fails once the others run.

    `link` ignores SIGTERM, so it needs the SIGKILL after the grace period.
    Each of the others starts a helper process, as a compiler driver does.
    """

    def step(name: str, *mode: str) -> Step:
        argv = (sys.executable, "-m", MODULE, "step", str(out), name, *mode)
        return Step(name, argv, cwd=ROOT)

    return [
        step("compile-a", "--fail-after", str(fail_after)),
        step("compile-b"),
        step("compile-c"),
        step("link", "--ignore-sigterm"),
    ]


# --8<-- [end:demo]


# --8<-- [start:fake]
def fake_compiler(out: Path, name: str, fail_after: int, ignore_term: bool) -> int:
    """A compiler driver stand-in: starts a helper, then writes object files.

    With `fail_after` N it waits until N other steps are running (their
    helpers too), then fails. It lives at most 20 s, so that a leaked one
    ends on its own.
    """
    (out / "pids" / f"{name}.{os.getpid()}").touch()
    ready = out / "ready"
    deadline = time.monotonic() + 20
    if fail_after:
        while len(os.listdir(ready)) < fail_after and time.monotonic() < deadline:
            time.sleep(0.01)
        print(f"{name}.c:3: error: expected ';' before '}}' token", file=sys.stderr)
        return 1
    helper = subprocess.Popen([sys.executable, "-m", MODULE, "helper", str(out), name])
    if ignore_term:  # after the start: the helper keeps the default action
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while not any((out / "pids").glob(f"{name}-helper.*")):
        time.sleep(0.01)
    (ready / name).touch()
    status = write_objects(out, name, deadline)
    helper.wait(timeout=5)
    return status


def write_objects(out: Path, name: str, deadline: float) -> int:
    """Write an object file every 50 ms until `deadline`."""
    count = 0
    while time.monotonic() < deadline:
        (out / "obj" / f"{name}.{os.getpid()}.{count}.o").write_bytes(b"\0" * 64)
        count += 1
        time.sleep(0.05)
    return 0


# --8<-- [end:fake]


# --8<-- [start:main]
def main(argv: Sequence[str] | None = None) -> int:
    """`demo OUT`, or the stand-in processes `step` and `helper`."""
    parser = argparse.ArgumentParser(prog="structured_cancellation")
    parser.add_argument("mode", choices=["demo", "step", "helper"])
    parser.add_argument("out", type=Path)
    parser.add_argument("name", nargs="?", default="")
    parser.add_argument("--fail-after", type=int, default=0)
    parser.add_argument("--ignore-sigterm", action="store_true")
    parser.add_argument("--grace", type=float, default=0.5)
    parser.add_argument("--no-failure", action="store_true")
    args = parser.parse_args(argv)
    if args.mode == "helper":
        (args.out / "pids" / f"{args.name}-helper.{os.getpid()}").touch()
        return write_objects(args.out, f"{args.name}-helper", time.monotonic() + 20)
    if args.mode == "step":
        return fake_compiler(args.out, args.name, args.fail_after, args.ignore_sigterm)
    prepare(args.out)
    build = Build(log_dir=args.out / "logs", grace=args.grace)
    steps = demo_steps(args.out)[1 if args.no_failure else 0 :]
    try:
        return asyncio.run(run_until_interrupted(build, steps))
    except KeyboardInterrupt:  # Ctrl-C before our handler was installed
        return 130


# --8<-- [end:main]


def prepare(out: Path) -> None:
    """Create the demo's output directories."""
    for sub in ("pids", "ready", "obj", "logs"):
        (out / sub).mkdir(parents=True, exist_ok=True)


if __name__ == "__main__":
    sys.exit(main())
