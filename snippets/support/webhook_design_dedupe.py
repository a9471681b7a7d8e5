"""The race the verify-then-dedupe page reproduces: identical copies at once.

`run_race` sends ``copies`` identical, validly signed deliveries to a real
`WebhookReceiver` at the same moment; every copy that reaches the effect waits
at a barrier for the others, so copies that both pass the dedupe step really
are inside the handler together.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path

from snippets.support.webhook_design_endpoint import post_webhook
from snippets.webhook_design.verify_then_dedupe import (
    Delivery,
    DeliveryStore,
    Effect,
    Verifier,
    WebhookReceiver,
    new_secret,
    signature_headers,
)

__all__ = ["BODY", "record_processing", "run_race"]

BODY = (
    '{"type":"invoice.paid","data":{"id":"in_1","amount":10.50,"name":"Zoë"}}'.encode()
)


def record_processing(barrier: threading.Barrier) -> Effect:
    """An effect that counts its runs in ``processed``, after a meeting point.

    Every copy that reaches the effect waits at ``barrier`` so that copies
    arriving together really are inside the handler together. With the
    atomic claim only one copy gets there; it gives up waiting and goes on.
    """

    def effect(conn: sqlite3.Connection, delivery: Delivery) -> str:
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass  # the other copy never came: the claim kept it out
        conn.execute("INSERT INTO processed (msg_id) VALUES (?)", (delivery.msg_id,))
        return "accepted"

    return effect


def run_race(
    store_type: type[DeliveryStore], directory: Path, copies: int = 2
) -> tuple[int, list[str]]:
    """Send ``copies`` identical deliveries at the same moment.

    Returns:
        How many times the effect ran, and the sorted answers.
    """
    secret = new_secret()
    store = store_type(directory / f"{store_type.__name__}.db")
    with closing(store.connect()) as conn:
        conn.execute("CREATE TABLE processed (msg_id TEXT NOT NULL)")
    effect = record_processing(threading.Barrier(copies, timeout=0.5))
    headers = signature_headers([secret], "msg_race", int(time.time()), BODY)
    start = threading.Barrier(copies)
    answers: list[str] = []

    def send(url: str) -> None:
        start.wait(timeout=5)
        status, text = post_webhook(url, headers, BODY)
        answers.append(f"{status} {text}")

    with WebhookReceiver(Verifier([secret]), store, effect) as receiver:
        senders = [
            threading.Thread(target=send, args=(receiver.url,)) for _ in range(copies)
        ]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(timeout=10)
    with closing(store.connect()) as conn:
        (runs,) = conn.execute("SELECT count(*) FROM processed").fetchone()
    return runs, sorted(answers)
