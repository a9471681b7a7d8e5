"""The Celery experiment of the background-after-response page.

`celery_crash`: five deliveries to a FastAPI route that publishes a Celery
task per delivery (uvicorn in a child process), SIGKILL of the web process
after the 2xx answers; then a Celery worker (solo pool) that is killed with
SIGKILL while it runs the first task; then a second worker, and a probe task
published behind the others. What was done, with and without
``task_acks_late``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pika
from celery import Celery  # type: ignore[import-untyped]

from snippets.support.webhook_design_background import (
    ROOT,
    effects,
    post_delivery,
    start_child,
)

__all__ = ["CeleryResult", "celery_crash"]


@dataclass(frozen=True)
class CeleryResult:
    acks_late: bool
    answers: list[int]
    done: int

    @property
    def lost(self) -> int:
        return len(self.answers) - self.done


def _wait(condition: str, check: Callable[[], bool], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:  # bounded wait
            raise TimeoutError(condition)
        time.sleep(0.2)


def _worker(
    directory: Path, broker: str, queue: str, acks_late: bool, work: float
) -> subprocess.Popen[bytes]:
    env = dict(os.environ, CP_RABBITMQ_URL=broker, CELERY_QUEUE=queue)
    env.update(ACKS_LATE="1" if acks_late else "0", WORK_SECONDS=str(work))
    env["EFFECTS_DIR"] = str(directory)
    command = [sys.executable, "-m", "celery", "-A"]
    command += ["snippets.support.webhook_design_celery_worker", "worker"]
    command += ["--pool", "prefork", "--concurrency", "1", "-Q", queue]
    command += ["--loglevel", "WARNING", "-n", f"{queue}.{work:g}@%h"]  # unique
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    with (directory / f"worker-{work:g}.log").open("ab") as log:  # for failures
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,  # the pool child is in the same group
        )


class _ReadyCount:
    """RabbitMQ's ready count of a queue, over one connection (reopened if
    the broker drops it: other tests on the machine restart RabbitMQ)."""

    def __init__(self, broker: str, queue: str) -> None:
        self.broker, self.queue = broker, queue
        self.connection: pika.BlockingConnection | None = None

    def __call__(self) -> int:
        try:
            if self.connection is None or self.connection.is_closed:
                params = pika.URLParameters(self.broker)
                self.connection = pika.BlockingConnection(params)
            channel = self.connection.channel()
            declared = channel.queue_declare(self.queue, passive=True)
            channel.close()
            return int(declared.method.message_count)
        except pika.exceptions.AMQPError:
            self.close()
            return sys.maxsize  # unknown: not ready yet

    def close(self) -> None:
        if self.connection is not None and self.connection.is_open:
            try:
                self.connection.close()
            except pika.exceptions.AMQPError:
                pass
        self.connection = None


def celery_crash(
    directory: Path, broker: str, queue: str, *, acks_late: bool, deliveries: int = 5
) -> CeleryResult:
    """Kill the web process after its 2xx, then the worker mid-task; count."""
    directory.mkdir(parents=True, exist_ok=True)
    with socket.create_server(("127.0.0.1", 0), backlog=64) as sock:
        port = sock.getsockname()[1]
        extra = ["--queue", queue, "--broker", broker]
        web = start_child("celery", sock, directory, work=0, extra=extra)
        try:
            ids = [f"evt_{n}" for n in range(1, deliveries + 1)]
            answers = [
                post_delivery(port, "celery", delivery_id) for delivery_id in ids
            ]
        finally:
            web.send_signal(signal.SIGKILL)
            web.wait(timeout=30)
    first = _worker(directory, broker, queue, acks_late, work=600)
    # Kill once evt_1 runs. Early ack: wait until the broker has the ack too
    # (it then hands the worker evt_2, and 3 stay ready). Late ack: evt_1
    # stays unacknowledged while it runs, and 4 stay ready.
    ready = deliveries - (1 if acks_late else 2)
    count = _ReadyCount(broker, queue)
    try:
        _wait(
            f"evt_1 running (worker log: {directory}/worker-600.log)",
            lambda: (directory / "started-evt_1").exists() and count() <= ready,
        )
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        count.close()
    with Celery(broker=broker) as publisher:  # no task registered here
        publisher.send_task("webhooks.process", ("probe", "{}"), queue=queue)
    second = _worker(directory, broker, queue, acks_late, work=0)
    try:
        _wait("the probe ran", lambda: "probe" in effects(directory))
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(timeout=30)
    done = len([e for e in effects(directory) if e != "probe"])
    return CeleryResult(acks_late, answers, done)
