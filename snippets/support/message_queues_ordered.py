"""Harness for the ordered-processing demos and tests: publish events to a queue
and consume them with several consumers at once."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pika

from snippets.message_queues.ordered_processing import (
    Event,
    consume_events,
)

__all__ = ["publish_and_consume", "wait_for_consumers"]


def wait_for_consumers(
    channel: Any, queue_name: str, count: int, timeout: float
) -> None:
    """Poll the queue until `count` consumers are registered on it."""
    deadline = time.monotonic() + timeout
    while channel.queue_declare(queue_name, passive=True).method.consumer_count < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} consumers did not register in {timeout} s")
        time.sleep(0.02)


def publish_and_consume(
    url: str,
    queue_name: str,
    events: list[Event],
    handle: Callable[[Event], None],
    *,
    consumers: int = 2,
    timeout: float = 10.0,
) -> None:
    """Start `consumers` threads on the queue, publish `events`, wait for all."""
    done, lock, handled = threading.Event(), threading.Lock(), [0]

    def counted(event: Event) -> None:
        handle(event)
        with lock:
            handled[0] += 1
            if handled[0] == len(events):
                done.set()

    stop = threading.Event()
    threads = [
        threading.Thread(
            target=consume_events, args=(url, queue_name, counted, stop), name=f"c{n}"
        )
        for n in range(consumers)
    ]
    for thread in threads:
        thread.start()
    try:
        with pika.BlockingConnection(pika.URLParameters(url)) as connection:
            channel = connection.channel()
            wait_for_consumers(channel, queue_name, consumers, timeout)
            for event in events:
                body = json.dumps(dataclasses.asdict(event)).encode()
                channel.basic_publish("", queue_name, body)
        if not done.wait(timeout):
            raise TimeoutError(f"{len(events) - handled[0]} events not handled")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout)
