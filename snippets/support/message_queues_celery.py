"""Harness for the Celery page: real worker processes, a client, queue counters.

A worker is ``python -m celery -A snippets.support.message_queues_celery worker``
in a session of its own, configured through the environment: ``CP_CELERY_CONF``
holds its settings as JSON, and ``CP_CELERY_READY`` ("<redis url> <key>") is
where it reports that it consumes. Its log goes to a file the caller can read.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika
import redis as redis_py
from celery import Celery  # type: ignore[import-untyped]
from celery.signals import worker_ready  # type: ignore[import-untyped]

from snippets.message_queues.celery_tasks.tasks import app
from snippets.support import services
from snippets.support.processes import kill_session

__all__ = [
    "TIMEOUT",
    "Lab",
    "Worker",
    "app",
    "client",
    "consumer_count",
    "rabbitmq_lab",
    "ready_count",
    "redis_lab",
    "wait_until",
    "worker",
]

ROOT = Path(__file__).resolve().parents[2]
CONF_ENV, READY_ENV = "CP_CELERY_CONF", "CP_CELERY_READY"

# Workers the demos start: no remote control, events or cluster chatter.
QUIET_WORKER: dict[str, Any] = {
    "worker_enable_remote_control": False,
    "worker_send_task_events": False,
    "task_ignore_result": True,
    "broker_connection_retry_on_startup": True,
}

if os.environ.get(CONF_ENV):  # in a worker process this harness started
    app.conf.update(json.loads(os.environ[CONF_ENV]))


@worker_ready.connect  # type: ignore[untyped-decorator]
def _report_ready(**kwargs: Any) -> None:
    url, _, key = os.environ.get(READY_ENV, "").partition(" ")
    if key:
        with redis_py.Redis.from_url(url) as client:
            client.rpush(key, "ready")


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` every 20 ms; raise `TimeoutError` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def _declare(url: str, queue: str) -> pika.spec.Queue.DeclareOk:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return connection.channel().queue_declare(queue, passive=True).method
    finally:
        connection.close()


def ready_count(url: str, queue: str) -> int:
    """Messages waiting in a RabbitMQ queue (not counting unacked ones)."""
    return int(_declare(url, queue).message_count)


def consumer_count(url: str, queue: str) -> int:
    return int(_declare(url, queue).consumer_count)


@contextmanager
def client(conf: dict[str, Any]) -> Iterator[Celery]:
    """A Celery app that only sends tasks, with the same settings as the workers."""
    sender = Celery("client", set_as_current=False)
    sender.conf.update({**QUIET_WORKER, **conf})
    try:
        yield sender
    finally:
        sender.close()


@dataclass
class Worker:
    """A worker process in a session of its own."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes, like a lost node or pod."""
        kill_session(self.proc)

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM: Celery's warm shutdown, which sends the acks it still holds.

        It takes about 5 s on a quiet machine (the event loop sees the request
        at its next timer). A worker still running after ``timeout`` is asked
        for its threads' stacks (Celery's SIGUSR1 handler writes them to the
        log) and the error carries the end of the log.
        """
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(
                f"worker {self.name} still running {timeout} s after SIGTERM; "
                f"the end of its log:\n{self.last_words()}"
            ) from None

    def last_words(self) -> str:
        """The end of the log; if the worker still runs, its threads' stacks
        are asked for first (Celery's SIGUSR1 handler writes them there)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(1)
        return self.log()[-6000:]


@contextmanager
def worker(
    conf: dict[str, Any],
    *,
    name: str,
    queues: list[str],
    journal: str,
    ready_key: str,
    pool: str = "solo",
    concurrency: int = 1,
    timeout: float = 40,
    env: dict[str, str] | None = None,
) -> Iterator[Worker]:
    """Start a worker and wait until it consumes; always killed (SIGKILL) and reaped.

    An error raised inside the block carries the end of the worker's log,
    with the stacks of its threads if it was still running.

    ``env`` adds environment variables, such as billiard's ``REMAP_SIGTERM``.
    """
    environ = {
        **os.environ,
        **(env or {}),
        CONF_ENV: json.dumps({**QUIET_WORKER, **conf}),
        READY_ENV: f"{journal} {ready_key}",
    }
    args = [sys.executable, "-m", "celery", "-A", __name__, "worker"]
    args += [f"--pool={pool}", f"--concurrency={concurrency}", "-n", f"{name}@cp"]
    args += ["-Q", ",".join(queues), "--loglevel=INFO"]
    args += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    fd, log_name = tempfile.mkstemp(prefix=f"celery-{name}-", suffix=".log")
    with os.fdopen(fd, "wb") as log:
        proc = subprocess.Popen(
            args, cwd=ROOT, env=environ, stdout=log, stderr=log, start_new_session=True
        )
    handle = Worker(name, proc, Path(log_name))
    try:
        with redis_py.Redis.from_url(journal) as r:
            deadline = time.monotonic() + timeout
            while not r.lpop(ready_key):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker {name} did not start:\n{handle.log()}")
                time.sleep(0.02)
        yield handle
    except Exception as error:  # say what the worker saw: its stacks and log
        error.add_note(f"worker {name}'s log ends:\n{handle.last_words()}")
        raise
    finally:
        handle.kill()
        handle.log_path.unlink(missing_ok=True)


TIMEOUT = 30.0


@dataclass
class Lab:
    """A RabbitMQ or Redis broker, a Redis journal, and names of one's own."""

    broker: str
    journal: services.Redis
    rabbitmq: services.RabbitMQ | None = None

    def queue(self, base: str) -> str:
        if self.rabbitmq is not None:
            return self.rabbitmq.name(base)
        return f"{self.journal.prefix}.{base}"

    def lines(self, key: str) -> list[str]:
        with redis_py.Redis.from_url(self.journal.url) as r:
            return [item.decode() for item in r.lrange(key, 0, -1)]

    def wait_for(self, key: str, line: str) -> None:
        wait_until(lambda: line in self.lines(key), TIMEOUT, f"{line!r} in {key}")

    def open_gate(self, gate: str) -> None:
        with redis_py.Redis.from_url(self.journal.url) as r:
            r.rpush(gate, "open")

    def worker(
        self, conf: dict[str, Any], name: str, *queues: str, **kw: Any
    ) -> AbstractContextManager[Worker]:
        conf = {"broker_url": self.broker, **conf}
        key = self.journal.key(f"ready-{name}")
        return worker(
            conf,
            name=name,
            queues=list(queues),
            journal=self.journal.url,
            ready_key=key,
            **kw,
        )

    def send(
        self, conf: dict[str, Any], task: str, queue: str, *args: Any, **kw: Any
    ) -> None:
        with client({"broker_url": self.broker, **conf}) as app:
            app.send_task(f"celery_tasks.{task}", args=args, queue=queue, **kw)


@contextmanager
def rabbitmq_lab() -> Iterator[Lab]:
    with services.rabbitmq() as mq, services.redis() as rd:
        yield Lab(mq.url, rd, mq)


@contextmanager
def redis_lab() -> Iterator[Lab]:
    with services.redis() as rd:
        yield Lab(rd.url, rd)
