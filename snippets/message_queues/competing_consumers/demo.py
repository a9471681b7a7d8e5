"""The cases the competing-consumers page shows.

    python -m snippets.message_queues.competing_consumers.demo CASE

``consume_auto_ack`` is the hazard the page starts from; ``demo_prefetch``
shares twenty messages between a busy consumer and a free one.
"""

from __future__ import annotations

import sys
import threading

import pika

from snippets.message_queues.competing_consumers.consumer import (
    Delivery,
    Handler,
    connect,
    declare_queue,
    publish,
    ready_count,
    run_consumer,
)
from snippets.support import message_queues_competing as harness
from snippets.support import services
from snippets.support.cases import run_cases
from snippets.support.message_queues_competing import wait_until

__all__: list[str] = []


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


def prefetch_line(prefetch: int, counts: dict[str, int]) -> str:
    label = "0 (unlimited)" if prefetch == 0 else str(prefetch)
    return (
        f"prefetch={label}: busy consumer took {counts['busy']}, "
        f"free consumer took {counts['free']}"
    )


def show_prefetch_unlimited() -> list[str]:
    with services.rabbitmq() as mq:
        return [prefetch_line(0, demo_prefetch(mq.url, mq.name("jobs"), prefetch=0))]


def show_prefetch_bounded() -> list[str]:
    lines = []
    with services.rabbitmq() as mq:
        for prefetch in (1, 5):
            queue = mq.name(f"jobs{prefetch}")
            lines.append(
                prefetch_line(prefetch, demo_prefetch(mq.url, queue, prefetch=prefetch))
            )
    return lines


def show_crash(label: str, *flags: str, in_flight: int) -> list[str]:
    with services.rabbitmq() as mq, connect(mq.url) as conn:
        first, recovered = harness.crash_worker(mq, conn, *flags, in_flight=in_flight)
    got = sorted(
        d.body.decode() + (" (redelivered)" if d.redelivered else "") for d in recovered
    )
    lost = sorted(set(harness.BODIES) - {d.body.decode() for d in recovered})
    return [
        f"published: {' '.join(harness.BODIES)}",
        f'worker ({label}) printed "{first}", then got SIGKILL',
        f"another consumer received: {' '.join(got) or 'none'}",
        f"lost: {' '.join(lost) or 'none'}",
    ]


if __name__ == "__main__":
    sys.exit(
        run_cases(
            {
                "crash_auto_ack": lambda: show_crash(
                    "auto-ack", "--auto-ack", in_flight=harness.TOTAL
                ),
                "crash_manual_ack": lambda: show_crash(
                    "manual ack, prefetch 1", "--prefetch", "1", in_flight=1
                ),
                "prefetch_unlimited": show_prefetch_unlimited,
                "prefetch_bounded": show_prefetch_bounded,
            }
        )
    )
