"""The Celery app a worker of the background-after-response tests runs.

``python -m celery -A snippets.support.webhook_design_celery_worker worker``
with ``CP_RABBITMQ_URL``, ``CELERY_QUEUE``, ``ACKS_LATE`` (0 or 1),
``WORK_SECONDS`` and ``EFFECTS_DIR`` in the environment. The work marks its
start (a file ``started-<id>``), sleeps, and records the delivery id in
``EFFECTS_DIR/effects.sqlite3``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from snippets.support.services import service_url
from snippets.support.webhook_design_ack import record_effect
from snippets.webhook_design.acknowledge_fast import Delivery
from snippets.webhook_design.background_after_response.celery_route import (
    create_celery,
)

__all__ = ["app"]

_dir = Path(os.environ.get("EFFECTS_DIR", "."))
_work = float(os.environ.get("WORK_SECONDS", "0"))
_record = (
    record_effect(_dir / "effects.sqlite3", 0) if "EFFECTS_DIR" in os.environ else None
)


def _work_then_record(delivery_id: str, body: bytes) -> None:
    with (_dir / f"started-{delivery_id}").open("a") as started:
        started.write(f"{os.getpid()}\n")
    time.sleep(_work)
    if _record is not None:
        _record(Delivery(delivery_id, body, 1))


app = create_celery(
    service_url("rabbitmq"),
    os.environ.get("CELERY_QUEUE", "webhooks"),
    _work_then_record,
    acks_late=os.environ.get("ACKS_LATE") == "1",
)
# No pidbox queue: several test runs share the broker, and a killed worker's
# exclusive remote-control queue would lock out the next one.
app.conf.worker_enable_remote_control = False
