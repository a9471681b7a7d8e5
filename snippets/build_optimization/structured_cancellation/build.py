"""Steps in process groups of their own, run by one `asyncio.TaskGroup`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Build", "Step", "StepFailed", "last_line", "signal_group", "stop_group"]


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


def last_line(log: Path) -> str:
    lines = log.read_text(errors="replace").strip().splitlines()
    return lines[-1] if lines else "(no output)"


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
            raise StepFailed(step.name, returncode, last_line(log))
        left = ", killed what it left running" if leftover else ""
        self.outcomes[step.name] = f"ok{left}"

    def kill_now(self) -> None:
        """SIGKILL every running step's process group, grace or not."""
        for pgid in list(self._groups.values()):
            signal_group(pgid, signal.SIGKILL)

    # --8<-- [end:step]
