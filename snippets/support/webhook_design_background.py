"""Harness for the background-after-response page: uvicorn in a child process.

``python -m snippets.support.webhook_design_background --mode MODE --fd FD
--dir DIR --work S`` serves one route under uvicorn on the listening socket
``FD``: ``background-tasks`` and ``create-task`` (``broken.create_app``) or
``inbox`` (``create_inbox_app``). The work sleeps ``S`` seconds, then records
the delivery id in ``DIR/effects.sqlite3``.

`crash_after_2xx` runs the experiment of the page: N deliveries, SIGKILL after
the last 2xx, a restart on the same socket and data, a probe delivery to know
the new process is working, and the count of what was done.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from snippets.support.webhook_design_ack import record_effect
from snippets.webhook_design.acknowledge_fast import Delivery, Inbox
from snippets.webhook_design.background_after_response import create_inbox_app
from snippets.webhook_design.background_after_response.broken import create_app

__all__ = [
    "MODES",
    "ROOT",
    "CrashResult",
    "crash_after_2xx",
    "effects",
    "post_delivery",
    "start_child",
]

MODES = ["background-tasks", "create-task", "inbox"]
ROOT = Path(__file__).resolve().parents[2]
LEASE = 2.0  # the inbox lease in the experiment: an in-progress claim returns


def effects(directory: Path) -> list[str]:
    """The delivery ids whose work finished, in order."""
    path = directory / "effects.sqlite3"
    if not path.exists():
        return []
    with closing(sqlite3.connect(path, timeout=5)) as conn:
        try:
            rows = conn.execute("SELECT delivery_id FROM effects").fetchall()
        except sqlite3.OperationalError:
            return []
    return [str(row[0]) for row in rows]


def _serve(mode: str, fd: int, directory: Path, work: float, extra: list[str]) -> None:
    record = record_effect(directory / "effects.sqlite3", 0)

    async def slow_work(delivery_id: str, body: bytes) -> None:
        await asyncio.sleep(work)
        await asyncio.to_thread(record, Delivery(delivery_id, body, 1))

    def slow_handler(delivery: Delivery) -> None:
        time.sleep(work)
        record(delivery)

    def slow_handler_for_ids(delivery_id: str, body: bytes) -> None:
        slow_handler(Delivery(delivery_id, body, 1))  # runs in the worker only

    if mode == "celery":
        from snippets.webhook_design.background_after_response.celery_route import (
            create_celery,
            create_celery_app,
        )

        queue, broker = extra[extra.index("--queue") + 1], extra[-1]
        app = create_celery_app(create_celery(broker, queue, slow_handler_for_ids))
    elif mode == "inbox":
        inbox = Inbox(directory / "inbox.sqlite3")
        app = create_inbox_app(inbox, slow_handler, poll=0.2, lease=LEASE)
    else:
        app = create_app(slow_work)
    uvicorn.run(app, fd=fd, log_level="warning", lifespan="on")


@dataclass(frozen=True)
class CrashResult:
    """One route: answers before the kill, work done before and after."""

    mode: str
    answers: list[int]
    done_before_kill: int
    done_after_restart: int

    @property
    def lost(self) -> int:
        return len(self.answers) - self.done_after_restart


def post_delivery(port: int, mode: str, delivery_id: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        headers = {"webhook-id": delivery_id, "content-type": "application/json"}
        conn.request("POST", f"/{mode}", b'{"type":"invoice.paid"}', headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def start_child(
    mode: str,
    sock: socket.socket,
    directory: Path,
    work: float,
    extra: list[str] | None = None,
) -> subprocess.Popen[bytes]:
    """The harness under uvicorn on ``sock``, in a child process."""
    fd = sock.fileno()
    command = [sys.executable, "-m", __name__, "--mode", mode, "--fd", str(fd)]
    command += ["--dir", str(directory), "--work", str(work), *(extra or [])]
    return subprocess.Popen(command, cwd=ROOT, pass_fds=(fd,))


def crash_after_2xx(mode: str, directory: Path, deliveries: int = 5) -> CrashResult:
    """Send `deliveries`, SIGKILL after the 2xx answers, restart, count."""
    directory.mkdir(parents=True, exist_ok=True)
    with socket.create_server(("127.0.0.1", 0), backlog=64) as sock:
        port = sock.getsockname()[1]
        first = start_child(mode, sock, directory, work=60)  # still busy at the kill
        try:
            ids = [f"evt_{n}" for n in range(1, deliveries + 1)]
            answers = [post_delivery(port, mode, delivery_id) for delivery_id in ids]
            before = len(effects(directory))
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
        second = start_child(mode, sock, directory, work=0)

        def done() -> list[str]:
            return [e for e in effects(directory) if e != "probe"]

        try:
            post_delivery(port, mode, "probe")  # queued behind the N in the inbox
            deadline = time.monotonic() + 30
            # The probe says the new process works. The inbox also gets its
            # in-progress delivery back when the lease runs out: wait for all.
            wanted = deliveries if mode == "inbox" else 0
            while "probe" not in effects(directory) or len(done()) < wanted:
                if time.monotonic() > deadline:  # bounded wait, 30 s
                    raise TimeoutError(f"{mode}: the probe was not processed")
                time.sleep(0.05)
            after = len(done())
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=30)
    return CrashResult(mode, answers, before, after)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=[*MODES, "celery"], required=True)
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--work", type=float, required=True)
    parser.add_argument("--queue")
    parser.add_argument("--broker")
    args = parser.parse_args()
    extra = ["--queue", args.queue, "--broker", args.broker] if args.queue else []
    _serve(args.mode, args.fd, args.dir, args.work, extra)


if __name__ == "__main__":
    main()
