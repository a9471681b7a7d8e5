"""The cases the structured-cancellation page shows.

    python -m snippets.build_optimization.structured_cancellation.demo demo
    python -m snippets.build_optimization.structured_cancellation.demo orphans

Four stand-in compiler steps (`snippets.support.build_optimization_steps`):
`compile-a` fails once the other three and their helpers run; `link` ignores
SIGTERM. `naive_step`, `gather_build` and `leader_step` are the drivers
without the pattern.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from snippets.build_optimization.structured_cancellation import (
    Build,
    Step,
    StepFailed,
    build_and_report,
)
from snippets.build_optimization.structured_cancellation.build import last_line
from snippets.support.build_optimization_steps import (
    Tree,
    demo_steps,
    observe,
    prepare,
)
from snippets.support.cases import run_cases

__all__: list[str] = []  # the cases a page shows; the API is the package

GRACE = 0.5


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
        raise StepFailed(step.name, returncode, last_line(log))


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
        raise StepFailed(step.name, returncode, last_line(log))


# --8<-- [end:leader]


def in_task_group(
    runner: Callable[[Step, Path], Coroutine[Any, Any, None]],
    steps: Sequence[Step],
    logs: Path,
) -> Callable[[], Awaitable[None]]:
    """A driver that runs each step with ``runner`` inside one TaskGroup."""

    async def driver() -> None:
        async with asyncio.TaskGroup() as group:
            for step in steps:
                group.create_task(runner(step, logs))

    return driver


def drivers(out: Path) -> dict[str, Callable[[], Awaitable[None]]]:
    """The four drivers the page compares, over the same four steps."""
    steps, logs = demo_steps(out), out / "logs"

    async def leader(step: Step, log_dir: Path) -> None:
        await leader_step(step, log_dir, grace=GRACE)

    return {
        "asyncio.gather": lambda: gather_build(steps, logs),
        "TaskGroup, process not stopped": in_task_group(naive_step, steps, logs),
        "TaskGroup, terminate() the step": in_task_group(leader, steps, logs),
        "TaskGroup, kill the process group": lambda: Build(logs, GRACE).run(steps),
    }


def show_orphans() -> list[str]:
    """Each driver, the same failing build: what still runs 1 s later."""
    header = f"{'driver':<35}{'error raised':<28}{'running 1 s later':<19}writes"
    rows = [header]
    with tempfile.TemporaryDirectory() as scratch:
        for index, label in enumerate(drivers(Path(scratch))):
            tree = Tree(Path(scratch) / f"run{index}")
            prepare(tree.out)
            try:
                seen = asyncio.run(observe(tree, drivers(tree.out)[label]))
            finally:
                tree.kill_leftovers()
            writes = "yes" if seen.wrote_after_return else "none"
            count = len(seen.running_later)
            rows.append(f"{label:<35}{seen.error:<28}{count:<19}{writes}")
    return rows


def show_demo() -> list[str]:
    """The pattern's report for the failing build, stderr lines first."""
    with tempfile.TemporaryDirectory() as scratch:
        tree = Tree(Path(scratch))
        prepare(tree.out)
        build = Build(tree.out / "logs", grace=GRACE)
        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                asyncio.run(build_and_report(build, demo_steps(tree.out)))
        finally:
            tree.kill_leftovers()
    return (err.getvalue() + out.getvalue()).splitlines()


if __name__ == "__main__":
    sys.exit(run_cases({"demo": show_demo, "orphans": show_orphans}))
