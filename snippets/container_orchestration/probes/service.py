"""One replica: a worker loop, its dependency check and its probes, wired."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from .checks import CachedCheck, Check, Health
from .heartbeat import Heartbeat, run_worker
from .server import ProbeServer

__all__ = [
    "ProbeSettings",
    "Service",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbeSettings:
    """Timings of one replica's health state. The defaults suit the manifest.

    Attributes:
        heartbeat_max_age: A worker without a beat for this long is stuck.
        check_interval: Seconds between two checks of each dependency.
        check_timeout: Timeout of one dependency check.
        worker_poll: How often an idle worker wakes up to beat.
    """

    heartbeat_max_age: float = 10.0
    check_interval: float = 5.0
    check_timeout: float = 2.0
    worker_poll: float = 1.0


# --8<-- [start:service]
class Service:
    """One replica: a worker loop, its dependency check and its probes.

    `start()` returns at once; warm-up runs in the background and `/startupz`
    turns green when it returns. Only then does the worker start, so its
    heartbeat starts too. Until then `/livez` goes stale after
    `heartbeat_max_age`: that is why a slow warm-up needs a startup probe.
    """

    def __init__(
        self,
        dependency: Check,
        *,
        warm_up: Callable[[], None] = lambda: None,
        settings: ProbeSettings | None = None,
        host: str = "0.0.0.0",
        port: int = 0,
    ) -> None:
        s = settings or ProbeSettings()
        self.jobs: queue.Queue[Callable[[], None]] = queue.Queue()
        self.heartbeat = Heartbeat("worker", s.heartbeat_max_age)
        self.check = CachedCheck(
            "dependency", dependency, interval=s.check_interval, timeout=s.check_timeout
        )
        self.health = Health([self.heartbeat], [self.check])
        self.server = ProbeServer(self.health, host, port)
        self._warm_up, self._poll = warm_up, s.worker_poll
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # --8<-- [end:service]

    # --8<-- [start:service-start]
    def start(self) -> None:
        """Start probes and the dependency check now, the worker after warm-up."""
        self.server.start()
        self.check.start()
        self._spawn(self._start_worker, "warm-up")

    def _start_worker(self) -> None:
        self._warm_up()
        self.heartbeat.beat()  # the budget starts when the loop does
        self._spawn(
            run_worker, "worker", self.jobs, self.heartbeat, self._stop, self._poll
        )
        self.health.started.set()

    # --8<-- [end:service-start]

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop everything; a stuck worker is abandoned (it is a daemon)."""
        self._stop.set()
        self.server.close()
        self.check.stop(timeout)
        for thread in self._threads:
            thread.join(timeout)
