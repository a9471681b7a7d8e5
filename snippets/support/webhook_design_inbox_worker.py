"""A child program for the acknowledge-fast tests: one inbox worker process.

``python -m snippets.support.webhook_design_inbox_worker DB [--max-attempts N]``
drains the inbox in ``DB`` with an `InboxWorker` whose leases expire at once,
then exits 0. Its handler kills its own process with SIGKILL on any delivery
whose body contains ``"crash"``, the way an out-of-memory kill or a segfault
ends a worker: no exception, no ``release``, no cleanup. Every other delivery
is printed as ``processed <id>``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from snippets.webhook_design.acknowledge_fast import Delivery, Inbox, InboxWorker

__all__ = ["main"]


def handle(delivery: Delivery) -> None:
    """Process one delivery, or die the hard way on a ``crash`` body."""
    if b'"crash"' in delivery.body:
        os.kill(os.getpid(), signal.SIGKILL)
    print("processed", delivery.delivery_id, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Drain the inbox once; return the exit status."""
    parser = argparse.ArgumentParser(prog="webhook_design_inbox_worker")
    parser.add_argument("db", type=Path)
    parser.add_argument("--max-attempts", type=int, default=3)
    args = parser.parse_args(argv)
    worker = InboxWorker(
        Inbox(args.db), handle, lease=0, retry_in=0, max_attempts=args.max_attempts
    )
    while worker.run_once():
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
