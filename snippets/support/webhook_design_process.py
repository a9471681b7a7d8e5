"""A child process the webhook tests talk to line by line, then stop or kill.

`ChildProcess` starts ``python -m <module> <args>`` in the project root with
extra environment variables, reads its standard output on a thread, and on
leaving its block stops it with SIGTERM (SIGKILL if it does not exit).
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["ROOT", "ChildProcess"]

ROOT = Path(__file__).resolve().parent.parent.parent


class ChildProcess:
    """``python -m module args`` with piped standard input and output.

    Args:
        module: The module to run.
        args: Its command-line arguments.
        env: Variables added to this process's environment.
    """

    def __init__(
        self, module: str, args: Sequence[str], env: Mapping[str, str]
    ) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))

    def expect(self, prefix: str, timeout: float = 10.0) -> str:
        """The rest of the next line the child prints, which must start so."""
        line = self._lines.get(timeout=timeout)
        if not line.startswith(prefix):
            raise AssertionError(f"expected {prefix!r}, the child said {line!r}")
        return line.removeprefix(prefix)

    def send(self, line: str) -> None:
        """Write one line to the child's standard input."""
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def kill(self) -> None:
        """SIGKILL: no handler, no cleanup, no flush."""
        self.process.kill()
        self.process.wait(timeout=10)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()
