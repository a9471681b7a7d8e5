"""Liveness for a Celery worker without an HTTP server: a file and its age.

A worker bootstep starts a thread in the worker's main process that touches a
file every ``liveness_interval`` seconds; ``check.py`` is the probe that reads
the file's age. The thread needs nothing from the broker, so a broker outage
leaves the file fresh; a main process that is stopped, or stuck holding the
GIL, leaves it stale.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from celery import Celery, bootsteps  # type: ignore[import-untyped]

__all__ = ["LivenessFile", "add_liveness_file"]


# --8<-- [start:step]
class LivenessFile(bootsteps.StartStopStep):  # type: ignore[misc]
    """Touch ``app.conf.liveness_file`` every ``app.conf.liveness_interval`` s.

    A worker-level step: it starts with the worker, before the first broker
    connection, and its thread runs in the main process until the process
    exits. It keeps touching during a warm shutdown, while running tasks
    finish, so the kubelet does not restart a worker that is draining.
    ``liveness_file`` and ``liveness_interval`` are your own settings, not
    Celery's.
    """

    label = "liveness file"

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        conf = worker.app.conf
        self.path = Path(conf.get("liveness_file") or "/tmp/celery-alive")
        self.interval = float(conf.get("liveness_interval") or 5.0)

    def start(self, worker: Any) -> None:
        self.path.touch()
        threading.Thread(target=self._touch, name="liveness", daemon=True).start()

    def _touch(self) -> None:
        while True:  # a daemon thread: it ends with the process
            time.sleep(self.interval)
            self.path.touch()


def add_liveness_file(app: Celery) -> None:
    """Register the step on ``app``; do it where the worker imports the app."""
    app.steps["worker"].add(LivenessFile)


# --8<-- [end:step]
