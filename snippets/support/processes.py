"""Child processes in demos and tests: read what a child prints, with a deadline."""

from __future__ import annotations

import selectors
import subprocess

__all__ = ["read_line"]


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
