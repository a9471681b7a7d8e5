"""The broken sender the page starts from: one queue and one pool for all
endpoints. Kept to reproduce head-of-line blocking; do not copy.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence

from snippets.webhook_design.per_endpoint_isolation.lane import (
    Delivery,
    Endpoint,
    ResultHook,
)
from snippets.webhook_design.retry_schedule import post

__all__: list[str] = []


# --8<-- [start:broken]
class SharedQueueSender:
    """The broken version: every endpoint's deliveries in one FIFO, one pool.

    A delivery to an endpoint that hangs holds a worker for the whole
    timeout. Once every worker holds one, every delivery queued behind them
    waits, whatever its endpoint.
    """

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        *,
        workers: int = 1,
        timeout: float = 15.0,
        on_result: ResultHook | None = None,
    ) -> None:
        self._endpoints = list(endpoints)
        self._timeout, self._on_result = timeout, on_result
        self._queue: queue.Queue[tuple[Endpoint, Delivery]] = queue.Queue()
        self._stop = threading.Event()
        self._workers = [
            threading.Thread(target=self._work, daemon=True) for _ in range(workers)
        ]

    def publish(self, event_id: str, body: bytes) -> None:
        for endpoint in self._endpoints:  # fan-out: one delivery per endpoint
            self._queue.put((endpoint, Delivery(event_id, body)))

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                endpoint, delivery = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            headers = {"webhook-id": delivery.event_id}
            response = post(endpoint.url, delivery.body, headers, self._timeout)
            if self._on_result is not None:
                self._on_result(endpoint, delivery, response)

    # --8<-- [end:broken]

    def start(self) -> None:
        """Start the workers."""
        for worker in self._workers:
            worker.start()

    def close(self, timeout: float = 30.0) -> None:
        """Stop after the deliveries in progress; queued ones are dropped."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
