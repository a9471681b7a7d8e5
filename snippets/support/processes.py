"""Child processes in demos and tests: read what a child prints, with a deadline;
kill a child's whole session."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import Callable
from typing import IO, Any

__all__ = ["Lines", "kill_session", "read_line"]


class Lines:
    """The lines a child writes to one of its pipes, read on a thread of their own.

    A thread, not ``select`` on the pipe: a text stream reads ahead, so two
    lines that arrived together leave the second in the stream's buffer, where
    ``select`` cannot see it, and a reader that waits on the pipe waits for a
    line it already has.
    """

    def __init__(self, stream: IO[str]) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []  # every line taken so far, matched or not
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        try:
            for line in stream:
                self._queue.put(line.rstrip("\n"))
        except ValueError:  # the stream was closed under the thread
            pass
        finally:
            self._queue.put(None)

    def next(self, timeout: float) -> str | None:
        """The next line; None at end of stream; ``TimeoutError`` after ``timeout``."""
        try:
            line = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no line in {timeout} s") from None
        if line is None:
            self._queue.put(None)  # every later call sees the end too
            return None
        self.seen.append(line)
        return line

    def first(self, matches: Callable[[str], bool], timeout: float) -> str | None:
        """Skip to the next line that ``matches``; None on timeout or end of stream."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.next(max(deadline - time.monotonic(), 0.01))
            except TimeoutError:
                return None
            if line is None or matches(line):
                return line

    def rest(self, timeout: float = 5.0) -> list[str]:
        """Every line, read to the end of the stream (once the child has exited)."""
        deadline = time.monotonic() + timeout
        try:
            while self.next(max(deadline - time.monotonic(), 0.01)) is not None:
                pass
        except TimeoutError:
            pass
        return self.seen


_stdout: weakref.WeakKeyDictionary[subprocess.Popen[str], Lines] = (
    weakref.WeakKeyDictionary()
)


def read_line(proc: subprocess.Popen[str], timeout: float = 20) -> str:
    """One line from a child's stdout, or fail after ``timeout`` seconds.

    Raises ``TimeoutError`` when the child prints nothing in time, and
    ``RuntimeError`` when it exits instead. Once called for a child, read its
    stdout only through this function.
    """
    lines = _stdout.get(proc)
    if lines is None:
        assert proc.stdout is not None
        lines = _stdout[proc] = Lines(proc.stdout)
    try:
        line = lines.next(timeout)
    except TimeoutError:
        raise TimeoutError(f"child {proc.pid} printed nothing in {timeout} s") from None
    if line is None:
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
