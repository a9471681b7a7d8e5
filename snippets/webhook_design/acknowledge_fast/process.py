"""Run one receiver and its worker until SIGTERM, then shut down in order.

``WEBHOOK_SECRET=whsec_... python -m snippets.webhook_design.acknowledge_fast.process
--db inbox.sqlite3`` serves on a free loopback port and prints each delivery
it processes.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from snippets.webhook_design.acknowledge_fast.broken import MemoryQueueReceiver
from snippets.webhook_design.acknowledge_fast.inbox import Delivery, Handler, Inbox
from snippets.webhook_design.acknowledge_fast.receiver import InboxReceiver
from snippets.webhook_design.acknowledge_fast.worker import InboxWorker

__all__ = ["serve"]


# --8<-- [start:serve]
def serve(
    db: Path,
    handler: Handler,
    *,
    secret: str,
    mode: str = "inbox",
    paused: bool = False,
) -> None:
    """Run one receiver until SIGTERM or SIGINT, then shut down in order.

    Stop taking requests, wait for the requests in flight, then let the
    worker finish its current delivery. Whatever is left stays in the inbox.
    ``mode="memory"`` runs the broken `MemoryQueueReceiver` instead; ``paused``
    leaves the worker stopped, as if busy with a backlog.
    """
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server: InboxReceiver | MemoryQueueReceiver
    if mode == "inbox":
        inbox = Inbox(db)
        server = InboxReceiver(("127.0.0.1", 0), secret, inbox)
        background: InboxWorker | MemoryQueueReceiver = InboxWorker(inbox, handler)
        recovered = inbox.count("pending")
    else:
        server = background = MemoryQueueReceiver(("127.0.0.1", 0), secret, handler)
        recovered = server.pending.qsize()  # always 0: memory starts empty
    thread = threading.Thread(target=server.serve_forever, args=(0.1,))
    thread.start()
    print("listening", server.url, flush=True)
    print("recovered", recovered, flush=True)
    if not paused:
        background.start()
    stop.wait()
    server.shutdown()
    server.server_close()
    thread.join()
    if not paused:
        background.stop()


# --8<-- [end:serve]


def _print(delivery: Delivery) -> None:
    print("processed", delivery.delivery_id, flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="acknowledge_fast.process")
    parser.add_argument("--db", type=Path, required=True)
    secret = os.environ.get("WEBHOOK_SECRET")
    arguments = parser.parse_args()
    if not secret:
        parser.error("set WEBHOOK_SECRET to the endpoint's signing secret")
    serve(arguments.db, _print, secret=secret)
    sys.exit(0)
