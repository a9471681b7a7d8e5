"""Celery workers on Kubernetes: a liveness file, and shutdown inside the grace period.

* `LivenessFile` is a worker bootstep: a thread in the worker's main process
  touches a file every few seconds. It needs nothing from the broker.
* `main` in ``check.py`` is the ``exec`` liveness probe: it exits 0 while the
  file is younger than a threshold. It uses only the standard library, so it
  starts fast and never imports Celery.

The shutdown side is configuration, not code: ``terminationGracePeriodSeconds``
longer than the longest task, and ``task_acks_late`` for the task that is cut
off anyway (see the page).
"""

from .check import file_is_fresh, main
from .liveness import LivenessFile, add_liveness_file

__all__ = ["LivenessFile", "add_liveness_file", "file_is_fresh", "main"]
