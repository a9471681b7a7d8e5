"""Competing consumers on RabbitMQ: manual acks after the work, bounded prefetch.

Several consumers take messages from one queue. Each one acknowledges a message
only after its work is done, on the channel the message came from, and holds at
most ``prefetch`` unacknowledged messages at a time. A consumer that dies before
it acknowledges gets its messages redelivered to the others (at-least-once
delivery), and a slow consumer cannot hoard the queue while others idle.

Run one worker process (``--help`` lists the options)::

    python -m snippets.message_queues.competing_consumers --queue jobs
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pika
import pika.exceptions

log = logging.getLogger(__name__)

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


@dataclass(frozen=True)
class Delivery:
    """One message, as a handler sees it."""

    body: bytes
    redelivered: bool
    """The broker delivered this message before, to this or another consumer.

    Use it for metrics and logs only: a message can also be a duplicate without
    the flag (a publisher retry), so correctness comes from an idempotent handler.
    """


Handler = Callable[[Delivery], None]


# --8<-- [start:connect]
def connect(
    url: str = DEFAULT_URL, *, heartbeat: int = 30, timeout: float = 10.0
) -> pika.BlockingConnection:
    """Open a blocking connection whose every wait is bounded.

    Args:
        url: AMQP URL, for example ``amqp://guest:guest@127.0.0.1:5672/%2F``.
        heartbeat: heartbeat timeout in seconds. After two missed heartbeats
            (sent every ``heartbeat / 2`` s) the broker closes the connection,
            so a handler must not block the connection's thread (see
            `work_while_serving_connection`).
        timeout: limit in seconds for connecting, for each protocol step, and
            for a publish blocked by a broker resource alarm.

    Returns:
        An open connection; close it with ``with`` or ``close()``.
    """
    params = pika.URLParameters(url)
    params.heartbeat = heartbeat
    params.socket_timeout = timeout
    params.stack_timeout = timeout
    params.blocked_connection_timeout = timeout
    params.connection_attempts = 3
    params.retry_delay = 1.0
    return pika.BlockingConnection(params)


# --8<-- [end:connect]


# --8<-- [start:publish]
def declare_queue(
    channel: pika.adapters.blocking_connection.BlockingChannel, queue: str
) -> None:
    """Declare the durable queue that producers and all consumers share."""
    channel.queue_declare(queue, durable=True)


def publish(
    connection: pika.BlockingConnection, queue: str, bodies: Iterable[bytes]
) -> int:
    """Publish persistent messages and return once the broker confirmed them.

    Returns:
        How many messages were published.
    """
    count = 0
    with connection.channel() as channel:
        channel.confirm_delivery()
        for body in bodies:
            channel.basic_publish(
                "",
                queue,
                body,
                pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
                mandatory=True,
            )
            count += 1
    return count


# --8<-- [end:publish]


# --8<-- [start:consumer]
def run_consumer(
    connection: pika.BlockingConnection,
    queue: str,
    handle: Handler,
    *,
    prefetch: int,
    stop: threading.Event,
    idle_timeout: float = 0.5,
) -> int:
    """Consume ``queue`` until ``stop`` is set; ack each message after its work.

    Args:
        connection: used by this thread only (pika is not thread-safe).
        queue: the shared work queue.
        handle: does the work, on a worker thread.
        prefetch: most unacknowledged messages held at once; 0 is unlimited.
        stop: stop taking messages; the one in hand is finished and acked.
        idle_timeout: seconds between looks at ``stop`` while idle.

    Returns:
        How many messages were handled and acknowledged.

    Raises:
        Exception: what ``handle`` raised, after the channel is closed so that
            the broker requeues that message and any prefetched ones.
    """
    channel = connection.channel()
    channel.basic_qos(prefetch_count=prefetch)
    done = 0
    with ThreadPoolExecutor(1, thread_name_prefix="handler") as pool:
        try:
            for method, _props, body in channel.consume(
                queue, auto_ack=False, inactivity_timeout=idle_timeout
            ):
                if stop.is_set():
                    break  # an unhandled delivery goes back to the queue below
                if method is None:
                    continue  # nothing arrived within idle_timeout
                delivery = Delivery(body, bool(method.redelivered))
                work_while_serving_connection(connection, pool, handle, delivery)
                channel.basic_ack(method.delivery_tag)  # after the work, same channel
                done += 1
        finally:
            if channel.is_open:
                channel.close()  # requeues every delivery not acked yet
    return done


# --8<-- [end:consumer]


# --8<-- [start:heartbeats]
def work_while_serving_connection(
    connection: pika.BlockingConnection,
    pool: ThreadPoolExecutor,
    handle: Handler,
    delivery: Delivery,
) -> None:
    """Run ``handle`` on a worker thread while this thread serves the connection.

    pika sends heartbeats only while the connection's thread is inside pika. A
    handler that kept that thread busy for longer than the heartbeat timeout
    would get the connection closed by the broker, and its message redelivered
    although it was processed.

    Raises:
        Exception: whatever ``handle`` raised, re-raised on this thread.
    """
    future = pool.submit(handle, delivery)
    future.add_done_callback(lambda _: _wake(connection))
    while not future.done():
        connection.process_data_events(time_limit=None)  # heartbeats, I/O
    future.result()


def _wake(connection: pika.BlockingConnection) -> None:
    """Make a blocked ``process_data_events`` return (callable from any thread)."""
    with contextlib.suppress(pika.exceptions.ConnectionWrongStateError):
        connection.add_callback_threadsafe(lambda: None)


# --8<-- [end:heartbeats]


# --8<-- [start:auto-ack]
def consume_auto_ack(
    connection: pika.BlockingConnection,
    queue: str,
    handle: Handler,
    *,
    stop: threading.Event,
    idle_timeout: float = 0.5,
) -> int:
    """The hazard, kept for comparison: never use it for work that must happen.

    With ``auto_ack=True`` the broker forgets a message as soon as it writes it
    to the socket, and prefetch does not apply, so it pushes the whole queue to
    the first consumer. Whatever that process received and has not finished is
    lost when it dies.

    Returns:
        How many messages were handled.
    """
    channel = connection.channel()
    done = 0
    for method, _props, body in channel.consume(
        queue, auto_ack=True, inactivity_timeout=idle_timeout
    ):
        if stop.is_set():
            break
        if method is not None:
            handle(Delivery(body, bool(method.redelivered)))
            done += 1
    channel.close()
    return done


# --8<-- [end:auto-ack]


def ready_count(
    channel: pika.adapters.blocking_connection.BlockingChannel, queue: str
) -> int:
    """Messages ready for delivery (not counting unacknowledged ones)."""
    return int(channel.queue_declare(queue, passive=True).method.message_count)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` every 10 ms; raise `TimeoutError` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


class _Tally:
    """Thread-safe counter of handled messages per consumer name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, name: str) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + 1

    def get(self, name: str) -> int:
        with self._lock:
            return self._counts.get(name, 0)

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())


def _consumer_thread(
    url: str,
    queue: str,
    handle: Handler,
    prefetch: int,
    stop: threading.Event,
    errors: list[BaseException],
) -> threading.Thread:
    def target() -> None:
        try:
            with connect(url) as connection:
                run_consumer(
                    connection,
                    queue,
                    handle,
                    prefetch=prefetch,
                    stop=stop,
                    idle_timeout=0.05,
                )
        except BaseException as error:  # reported by the caller after join()
            errors.append(error)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


# --8<-- [start:demo-prefetch]
def demo_prefetch(
    url: str, queue: str, *, prefetch: int, total: int = 20, timeout: float = 10.0
) -> dict[str, int]:
    """Share ``total`` messages between a busy consumer and a free one.

    The busy consumer starts first and blocks on its first message until the
    free one has handled all it could get. Returns the count per consumer.
    """
    tally = _Tally()
    errors: list[BaseException] = []
    first, release, stop = threading.Event(), threading.Event(), threading.Event()

    def busy(_: Delivery) -> None:
        first.set()
        release.wait(timeout)
        tally.add("busy")

    def free(_: Delivery) -> None:
        tally.add("free")

    with connect(url) as connection:
        channel = connection.channel()
        declare_queue(channel, queue)
        publish(connection, queue, (b"job-%02d" % i for i in range(total)))
        threads = [_consumer_thread(url, queue, busy, prefetch, stop, errors)]
        if not first.wait(timeout):
            raise TimeoutError("the busy consumer got no message")
        # The broker fills the busy consumer's window: `prefetch`, or everything.
        left = 0 if prefetch == 0 else max(total - prefetch, 0)
        wait_until(lambda: ready_count(channel, queue) == left, timeout, "window")
        threads.append(_consumer_thread(url, queue, free, prefetch, stop, errors))
        wait_until(lambda: tally.get("free") == left, timeout, "free consumer")
        release.set()
        wait_until(lambda: tally.total() == total, timeout, "all messages")
        stop.set()
        for thread in threads:
            thread.join(timeout)
    if errors:
        raise errors[0]
    return {"busy": tally.get("busy"), "free": tally.get("free")}


# --8<-- [end:demo-prefetch]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one worker process until SIGTERM or SIGINT.

    Each message is printed when received and when done, so a supervisor (or a
    test) can see how far the worker got.
    """
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--prefetch", type=int, default=10)
    parser.add_argument(
        "--work-seconds", type=float, default=0.0, help="simulated work per message"
    )
    parser.add_argument(
        "--auto-ack",
        action="store_true",
        help="reproduce the hazard: no acknowledgements",
    )
    args = parser.parse_args(argv)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    def work(delivery: Delivery) -> None:
        name = delivery.body.decode()
        print(f"received {name} redelivered={delivery.redelivered}", flush=True)
        time.sleep(args.work_seconds)
        print(f"done {name}", flush=True)

    with connect(args.url) as connection:
        with connection.channel() as channel:
            declare_queue(channel, args.queue)
        if args.auto_ack:
            consume_auto_ack(connection, args.queue, work, stop=stop)
        else:
            run_consumer(
                connection, args.queue, work, prefetch=args.prefetch, stop=stop
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
