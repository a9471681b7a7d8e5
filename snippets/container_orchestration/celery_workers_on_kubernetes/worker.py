"""What the demo's worker processes import (Celery's ``imports`` setting).

The harness's worker runs the Celery page's app; this module adds the
liveness step to it, and, for comparison, the common recipe this page warns
against: a consumer step that touches a second file from the worker's event
loop (``loop_liveness_file``), which stops while the broker is unreachable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import bootsteps  # type: ignore[import-untyped]

from snippets.container_orchestration.celery_workers_on_kubernetes.liveness import (
    add_liveness_file,
)
from snippets.message_queues.celery_tasks.tasks import app

__all__: list[str] = []


class LoopLivenessFile(bootsteps.StartStopStep):  # type: ignore[misc]
    """Touch a file from the consumer's timer: only while the event loop runs."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, consumer: Any, **kwargs: Any) -> None:
        super().__init__(consumer, **kwargs)
        conf = consumer.app.conf
        name = conf.get("loop_liveness_file")
        self.path = Path(name) if name else None
        self.interval = float(conf.get("liveness_interval") or 5.0)
        self.tref: Any = None

    def start(self, consumer: Any) -> None:
        if self.path is not None:
            self.path.touch()
            self.tref = consumer.timer.call_repeatedly(self.interval, self.path.touch)

    def stop(self, consumer: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    shutdown = stop


add_liveness_file(app)
app.steps["consumer"].add(LoopLivenessFile)
