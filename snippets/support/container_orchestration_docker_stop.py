"""Run the docker-stop page's app in a real container, stop it, and report.

Shared by the page's demo and its tests: start a container from the local base
image (`snippets/support/docker_engine.py`) with the app's folder mounted
read-only, wait for its `ready` line, read PID 1's command line, time
`docker stop`, and collect the exit code and the app's lines.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from snippets.support.docker_engine import (
    base_image,
    container_name,
    docker,
    removed,
)
from snippets.support.services import ServiceUnavailable

__all__ = ["APP", "Stopped", "dumb_init", "run_and_stop", "seconds_bucket"]

APP = Path(__file__).parents[1] / "container_orchestration" / "docker_stop_and_pid_1"


@dataclass(frozen=True)
class Stopped:
    """What one `docker stop` did."""

    pid1: str  # PID 1's command line inside the container
    seconds: float  # how long `docker stop` took
    exit_code: int  # the container's exit code (137: SIGKILL, 143: SIGTERM)
    lines: list[str]  # the app's lines, the PID in front replaced by `pid N`

    @property
    def drained(self) -> bool:
        return any("got SIGTERM" in line for line in self.lines)


def dumb_init() -> Path:
    """The dumb-init binary the PyPI wheel installs next to this Python."""
    found = Path(sys.executable).parent / "dumb-init"
    if not found.is_file():
        which = shutil.which("dumb-init")
        if which is None:
            raise ServiceUnavailable(
                "dumb-init is not installed; pip install dumb-init==1.2.5.post1"
            )
        found = Path(which)
    return found.resolve()


def _lines(name: str) -> list[str]:
    return docker("logs", name).stdout.splitlines()


def seconds_bucket(seconds: float, timeout: int) -> str:
    """`at once` (well before the timeout), or `the full N s` (then SIGKILL)."""
    if seconds < timeout - 0.5:
        return "at once"
    if timeout - 0.5 <= seconds < timeout + 1.5:
        return f"the full {timeout} s"
    return f"about {round(seconds)} s"


def run_and_stop(
    command: Sequence[str],
    *,
    run_options: Sequence[str] = (),
    timeout: int = 2,
    ready: int = 1,
) -> Stopped:
    """Run `command` in a container, wait for `ready` lines, then `docker stop`."""
    image = base_image()
    name = container_name("stop")
    mounts = ["-v", f"{APP}:/app:ro"]
    if any("dumb-init" in part for part in command):
        mounts += ["-v", f"{dumb_init()}:/usr/local/bin/dumb-init:ro"]
    with removed([name]):
        docker(
            "run", "-d", "--name", name, "--pull", "never", "--network", "none",
            *mounts, *run_options, image, *command,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while sum("ready" in line or "busy" in line for line in _lines(name)) < ready:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} did not get ready: {_lines(name)}")
            time.sleep(0.05)
        pid1 = docker("exec", name, "cat", "/proc/1/cmdline").stdout
        started = time.monotonic()
        docker("stop", "-t", str(timeout), name, timeout=timeout + 30)
        seconds = time.monotonic() - started
        code = docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout
        lines = [re.sub(r"^\d+ ", "", line) for line in _lines(name)]
    return Stopped(pid1.replace("\0", " ").strip(), seconds, int(code), sorted(lines))
