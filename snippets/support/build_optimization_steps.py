"""Stand-in build steps for the structured-cancellation demo and tests.

Each step is a real process tree: a compiler-driver stand-in that starts a
helper process (as ``gcc`` starts ``cc1``), and both write object files into
the output directory. Every process records its PID in ``OUT/pids``, so a
`Tree` can tell afterwards which of them still run.

    python -m snippets.support.build_optimization_steps step OUT NAME [...]
    python -m snippets.support.build_optimization_steps helper OUT NAME
    python -m snippets.support.build_optimization_steps driver OUT [--grace S]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from snippets.build_optimization.structured_cancellation import (
    Build,
    Step,
    StepFailed,
    run_until_interrupted,
)

__all__ = ["Observation", "Tree", "demo_steps", "observe", "prepare"]

STEPS = "snippets.support.build_optimization_steps"
ROOT = Path(__file__).resolve().parents[2]


def prepare(out: Path) -> None:
    """Create the output directories the steps write into."""
    for sub in ("pids", "ready", "obj", "logs"):
        (out / sub).mkdir(parents=True, exist_ok=True)


def demo_steps(out: Path, fail_after: int = 3) -> list[Step]:
    """Four stand-in compiler steps; `compile-a` fails once the others run.

    `link` ignores SIGTERM, so it needs the SIGKILL after the grace period.
    Each of the others starts a helper process, as a compiler driver does.
    """

    def step(name: str, *mode: str) -> Step:
        argv = (sys.executable, "-m", STEPS, "step", str(out), name, *mode)
        return Step(name, argv, cwd=ROOT)

    return [
        step("compile-a", "--fail-after", str(fail_after)),
        step("compile-b"),
        step("compile-c"),
        step("link", "--ignore-sigterm"),
    ]


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
    helper = subprocess.Popen([sys.executable, "-m", STEPS, "helper", str(out), name])
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
        """How many object files the steps have written so far."""
        return sum(1 for _ in (self.out / "obj").iterdir())

    def still_running_after(self, seconds: float) -> list[str]:
        """Wait up to `seconds` for every process to end; return those left."""
        deadline = time.monotonic() + seconds
        while (left := self.running()) and time.monotonic() < deadline:
            time.sleep(0.02)
        return left

    def kill_leftovers(self) -> None:
        """SIGKILL every recorded process that still runs."""
        for name in self.running():
            os.kill(self.pids()[name], signal.SIGKILL)


@dataclass
class Observation:
    """How a driver failed, and what its steps did after it returned."""

    error: str
    running_later: list[str]
    wrote_after_return: bool


async def observe(
    tree: Tree, driver: Callable[[], Awaitable[None]], later: float = 1.0
) -> Observation:
    """Run a driver until it raises, then watch the output tree for a while."""
    try:
        await driver()
    except StepFailed:  # gather raises the step's own exception
        error = "StepFailed"
    except ExceptionGroup as group:
        if group.split(StepFailed)[1] is not None:
            raise
        error = "ExceptionGroup[StepFailed]"
    else:
        raise AssertionError("the build was expected to fail")
    at_return = tree.objects()
    left = await asyncio.to_thread(tree.still_running_after, later)
    if left:  # something may still write: wait until it has, bounded
        deadline = time.monotonic() + 5
        while tree.objects() == at_return and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    wrote = tree.objects() > at_return
    for task in asyncio.all_tasks() - {asyncio.current_task()}:
        task.cancel()  # gather's abandoned steps; their processes stay
    return Observation(error, left, wrote)


def main(argv: Sequence[str] | None = None) -> int:
    """The stand-in processes `step` and `helper`, or a `driver` to interrupt."""
    parser = argparse.ArgumentParser(prog="build_optimization_steps")
    parser.add_argument("mode", choices=["driver", "step", "helper"])
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
    except KeyboardInterrupt:  # Ctrl-C before the handler was installed
        return 130


if __name__ == "__main__":
    sys.exit(main())
