"""Harness for the acknowledge-fast demo and tests: a slow handler, a
receiver in a child process, and the two experiments the page shows.

``python -m snippets.support.webhook_design_ack --db DB --mode inbox|memory
[--paused] [--work S]`` runs `serve` with a handler that records each run in
an ``effects`` table of ``DB`` and prints ``processed <id>``; the secret comes
from ``WEBHOOK_SECRET``. `ReceiverProcess` starts it, reads it and kills it.
"""

from __future__ import annotations

import argparse
import base64
import os
import sqlite3
import sys
import threading
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from snippets.support.webhook_design_process import ChildProcess
from snippets.webhook_design.acknowledge_fast import (
    Attempt,
    Delivery,
    Handler,
    Inbox,
    InboxReceiver,
    InboxWorker,
    WebhookServer,
    deliver,
    serve,
)
from snippets.webhook_design.acknowledge_fast.broken import SyncReceiver

__all__ = [
    "DEMO_SECRET",
    "PAYLOAD",
    "CrashResult",
    "ReceiverProcess",
    "SlowHandlerResult",
    "count_effects",
    "crash_after_ack",
    "record_effect",
    "slow_handler",
]


DEMO_SECRET = "whsec_" + base64.b64encode(b"demo-only-secret-32-bytes-long!!").decode()
PAYLOAD = b'{"type":"invoice.paid","data":{"id":"in_1"}}'


def record_effect(db: str | Path, work: float) -> Handler:
    """A handler that takes `work` seconds, then records one effect row.

    It stands in for a slow call to another system (an email, a charge). The
    `effects` table counts how often it ran, duplicates included.
    """
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS effects (delivery_id TEXT NOT NULL)")

    def handle(delivery: Delivery) -> None:
        time.sleep(work)
        with closing(sqlite3.connect(db, timeout=5, isolation_level=None)) as conn:
            conn.execute("INSERT INTO effects VALUES (?)", (delivery.delivery_id,))

    return handle


def count_effects(db: str | Path) -> int:
    """How many times the demo handler ran, over all deliveries."""
    with closing(sqlite3.connect(db)) as conn:
        return int(conn.execute("SELECT count(*) FROM effects").fetchone()[0])


@dataclass(frozen=True)
class SlowHandlerResult:
    """One receiver behind a slow handler: what the sender saw, what ran."""

    receiver: str
    attempts: list[Attempt]
    effects: int
    timeout: float
    work: float
    max_attempts: int


def slow_handler(
    receiver: str,
    workdir: Path,
    *,
    timeout: float = 1.0,
    work: float = 1.5,
    attempts: int = 3,
) -> SlowHandlerResult:
    """Send one delivery to a receiver whose handler outlasts the sender's timeout.

    `receiver` is "sync" (`SyncReceiver`) or "inbox" (`InboxReceiver` plus an
    `InboxWorker`). Returns after every handler run has finished.
    """
    db = workdir / f"{receiver}.sqlite3"
    finished = threading.Event()
    effect = record_effect(db, work)

    def handler(delivery: Delivery) -> None:
        effect(delivery)
        finished.set()

    server: WebhookServer
    worker: InboxWorker | None = None
    if receiver == "sync":
        server = SyncReceiver(("127.0.0.1", 0), DEMO_SECRET, handler)
    else:
        inbox = Inbox(db)
        server = InboxReceiver(("127.0.0.1", 0), DEMO_SECRET, inbox)
        worker = InboxWorker(inbox, handler, poll=0.1)
        worker.start()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,))
    thread.start()
    try:
        seen = deliver(
            server.url,
            "evt_1",
            PAYLOAD,
            DEMO_SECRET,
            timeout=timeout,
            attempts=attempts,
        )
        finished.wait(timeout=work + 10)
    finally:
        server.shutdown()
        server.server_close()  # waits for handlers still running
        thread.join(timeout=10)
        if worker is not None:
            worker.stop()
    return SlowHandlerResult(receiver, seen, count_effects(db), timeout, work, attempts)


class ReceiverProcess(ChildProcess):
    """`serve` in a child process, for crash tests: start it, read it, kill it."""

    def __init__(self, db: Path, mode: str, *, paused: bool, work: float) -> None:
        args = ["--db", str(db), "--mode", mode, "--work", str(work)]
        args += ["--paused"] if paused else []
        super().__init__(__name__, args, {"WEBHOOK_SECRET": DEMO_SECRET})
        try:
            self.url = self.expect("listening ")
            self.recovered = int(self.expect("recovered "))
        except BaseException:
            self.kill()  # never leave a half-started receiver behind
            raise


@dataclass(frozen=True)
class CrashResult:
    """A receiver killed after its 2xx: what the sender saw, what survived."""

    mode: str
    sender_saw: Attempt
    recovered: int
    effects: int


def crash_after_ack(mode: str, workdir: Path) -> CrashResult:
    """Deliver to a receiver process, SIGKILL it after its 2xx, then restart it.

    The first process runs with its worker paused, as if busy with a backlog,
    so the kill always lands between the 2xx and the processing. `mode` is
    "memory" (`MemoryQueueReceiver`) or "inbox" (`InboxReceiver`).
    """
    db = workdir / f"crash-{mode}.sqlite3"
    with ReceiverProcess(db, mode, paused=True, work=0) as child:
        sent = deliver(child.url, "evt_2", PAYLOAD, DEMO_SECRET, timeout=5, attempts=1)
        child.kill()
    with ReceiverProcess(db, mode, paused=False, work=0) as child:
        recovered = child.recovered
        for _ in range(recovered):
            child.expect("processed ")
    return CrashResult(mode, sent[0], recovered, count_effects(db))


def main(argv: list[str] | None = None) -> int:
    """The child program: `serve` with a recording handler."""
    parser = argparse.ArgumentParser(prog="webhook_design_ack")
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--mode", choices=["inbox", "memory"], default="inbox")
    parser.add_argument("--paused", action="store_true", help="no worker")
    parser.add_argument("--work", type=float, default=0.0, help="handler seconds")
    args = parser.parse_args(argv)
    effect = record_effect(args.db, args.work)

    def handler(delivery: Delivery) -> None:
        effect(delivery)
        print("processed", delivery.delivery_id, flush=True)

    secret = os.environ["WEBHOOK_SECRET"]
    serve(args.db, handler, secret=secret, mode=args.mode, paused=args.paused)
    return 0


if __name__ == "__main__":
    sys.exit(main())
