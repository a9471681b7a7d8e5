"""A job server in a process of its own, for the async request-reply tests.

``python -m snippets.support.webhook_design_job_server DB`` serves a
`JobService` on loopback until SIGTERM, signing callbacks with the secret in
``WEBHOOK_SECRET``. It prints ``listening <url>`` once it serves, and
``started <input>`` when a job's work begins. The work adds the numbers of the
job's input; with ``--hold`` it first reads one line from standard input, so a
test decides when a job may finish. `JobServerProcess` starts one, reads it,
releases its work and kills it.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from snippets.webhook_design.async_request_reply import JobServer, JobService

__all__ = ["JobServerProcess", "main"]

ROOT = Path(__file__).resolve().parent.parent.parent


class JobServerProcess:
    """The job server as a child process; a context manager that stops it.

    Args:
        db: The server's SQLite file.
        secret: Its callback signing secret.
        hold: Each job's work waits for `release`.
        options: ``callback_timeout`` or ``lease`` for the `JobService`.
    """

    def __init__(
        self, db: Path, secret: str, *, hold: bool = False, **options: float
    ) -> None:
        command = [sys.executable, "-m", __name__, str(db)]
        for name, value in options.items():
            command += [f"--{name.replace('_', '-')}", str(value)]
        self.process = subprocess.Popen(
            [*command, "--hold"] if hold else command,
            cwd=ROOT,
            env={**os.environ, "WEBHOOK_SECRET": secret, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        try:
            self.url = self.expect("listening ")
        except BaseException:
            self.kill()
            raise

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))

    def expect(self, prefix: str, timeout: float = 10.0) -> str:
        """The rest of the next line the child prints, which must start so."""
        line = self._lines.get(timeout=timeout)
        if not line.startswith(prefix):
            raise AssertionError(f"expected {prefix!r}, the server said {line!r}")
        return line.removeprefix(prefix)

    def release(self) -> None:
        """Let one held job's work finish."""
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def kill(self) -> None:
        """SIGKILL: no handler, no cleanup, nothing sent afterwards."""
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


def _work(hold: bool) -> Any:
    def add(job_input: Any) -> Any:
        print("started", json.dumps(job_input), flush=True)
        if hold:
            sys.stdin.readline()
        return {"sum": sum(job_input)}

    return add


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM; return the exit status."""
    parser = argparse.ArgumentParser(prog="webhook_design_job_server")
    parser.add_argument("db", type=Path)
    parser.add_argument("--hold", action="store_true")
    parser.add_argument("--callback-timeout", type=float)
    parser.add_argument("--lease", type=float)
    args = parser.parse_args(argv)
    options = {
        name: value
        for name, value in (
            ("callback_timeout", args.callback_timeout),
            ("lease", args.lease),
        )
        if value is not None
    }
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    secret = os.environ["WEBHOOK_SECRET"]
    service = JobService(args.db, _work(args.hold), secret=secret, **options)
    with JobServer(service) as server:
        print("listening", server.url, flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
