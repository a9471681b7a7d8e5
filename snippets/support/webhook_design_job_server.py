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
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from snippets.support.webhook_design_process import ChildProcess
from snippets.webhook_design.async_request_reply import JobServer, JobService

__all__ = ["JobServerProcess", "main"]


class JobServerProcess(ChildProcess):
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
        args = [str(db), *(["--hold"] if hold else [])]
        for name, value in options.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        super().__init__(__name__, args, {"WEBHOOK_SECRET": secret})
        try:
            self.url = self.expect("listening ")
        except BaseException:
            self.kill()
            raise

    def release(self) -> None:
        """Let one held job's work finish."""
        self.send("go")


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
