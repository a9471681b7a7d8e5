"""The two broken receivers the page starts from.

`SyncReceiver` does the slow work before it answers; `MemoryQueueReceiver`
answers first and keeps the delivery only in process memory.
"""

from __future__ import annotations

import logging
import queue
import threading

from snippets.webhook_design.acknowledge_fast.inbox import Delivery, Handler
from snippets.webhook_design.acknowledge_fast.receiver import WebhookServer

__all__ = ["MemoryQueueReceiver", "SyncReceiver"]

log = logging.getLogger(__name__)


# --8<-- [start:sync]
class SyncReceiver(WebhookServer):
    """The broken version: run the handler, then answer.

    When the handler takes longer than the provider's timeout, the provider
    hangs up, counts a failure and sends the same delivery again, while the
    first run is still going.
    """

    def __init__(self, address: tuple[str, int], secret: str, handler: Handler) -> None:
        super().__init__(address, secret)
        self.handler = handler

    def accept(self, delivery_id: str, body: bytes) -> int:
        self.handler(Delivery(delivery_id, body))  # the slow part
        return 200  # often to a sender who has already given up


# --8<-- [end:sync]


# --8<-- [start:memory]
class MemoryQueueReceiver(WebhookServer):
    """The other broken version: answer 202 at once, work from a queue in memory.

    The provider sees a fast 2xx and never sends this delivery again. If the
    process dies before a worker has run it, nothing remembers it.
    """

    def __init__(self, address: tuple[str, int], secret: str, handler: Handler) -> None:
        super().__init__(address, secret)
        self.handler = handler
        self.pending: queue.Queue[Delivery] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="memory-worker")

    def accept(self, delivery_id: str, body: bytes) -> int:
        self.pending.put(Delivery(delivery_id, body))  # only in this process
        return 202

    # --8<-- [end:memory]

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                delivery = self.pending.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                self.handler(delivery)
            except Exception:
                log.exception("delivery %s failed and is gone", delivery.delivery_id)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        self._stop.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()
