"""Work after the 2xx: what a crash does to FastAPI BackgroundTasks, a bare
``asyncio.create_task``, and a durable inbox.

* `TaskSet` keeps strong references to fire-and-forget tasks, so that the
  garbage collector cannot destroy one while it waits.
* `create_inbox_app` is the fix: a FastAPI app that commits each delivery to
  the `Inbox` of acknowledge-fast before it answers 202, and drains it with
  an `InboxWorker` started in its lifespan.
* `create_celery` and `create_celery_app`: the Celery variant, a route that
  publishes one task per delivery (with publisher confirms) before its 202.

The in-memory routes (``BackgroundTasks``, ``create_task``) are in
``broken.py``; the cases the page shows are in ``demo.py``.
"""

from snippets.webhook_design.background_after_response.celery_route import (
    create_celery,
    create_celery_app,
)
from snippets.webhook_design.background_after_response.durable import (
    create_inbox_app,
)
from snippets.webhook_design.background_after_response.tasks import TaskSet

__all__ = ["TaskSet", "create_celery", "create_celery_app", "create_inbox_app"]
