"""Celery tasks that are neither lost nor run twice: settings and tasks.

``settings.RELIABLE`` acknowledges a task after it ran, reserves one task per
pool process and bounds the re-runs of a task that kills its worker;
``settings.redis_transport_options`` sets the Redis broker's visibility timeout
the same way on every worker and client. ``once`` keeps a repeated task's effect
from happening twice. Each of these was run against real Celery workers on
RabbitMQ and Redis (``demo.py``).
"""

from snippets.message_queues.celery_tasks.once import (
    DEDUPE_SECONDS,
    charge_once,
    charge_under_lock,
)
from snippets.message_queues.celery_tasks.settings import (
    RELIABLE,
    redis_transport_options,
)

__all__ = [
    "DEDUPE_SECONDS",
    "RELIABLE",
    "charge_once",
    "charge_under_lock",
    "redis_transport_options",
]
