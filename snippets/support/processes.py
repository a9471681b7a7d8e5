"""Child processes in demos and tests: read what a child prints, with a deadline;
kill a child's whole session."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
from typing import Any

__all__ = ["kill_session", "read_line"]


def read_line(proc: subprocess.Popen[str], timeout: float = 20) -> str:
    """One line from a child's stdout, or fail after ``timeout`` seconds.

    Raises ``TimeoutError`` when the child prints nothing in time, and
    ``RuntimeError`` when it exits instead.
    """
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise TimeoutError(f"child {proc.pid} printed nothing in {timeout} s")
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"child {proc.pid} exited with {proc.wait(timeout=5)}")
    return line.strip()


def kill_session(proc: subprocess.Popen[Any], timeout: float = 10) -> None:
    """SIGKILL a child started with ``start_new_session=True`` and everything
    in its session (a master and its workers), as a runtime kills a container;
    then reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=timeout)
