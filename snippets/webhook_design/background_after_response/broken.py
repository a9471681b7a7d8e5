"""Work after the 2xx that lives only in the process: lost on a crash."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import BackgroundTasks, FastAPI, Request, Response

from snippets.webhook_design.background_after_response.tasks import TaskSet

__all__ = ["Work", "create_app", "fire_and_forget"]

Work = Callable[[str, bytes], Coroutine[Any, Any, None]]
"""The slow part: ``await work(delivery_id, body)``."""


def create_app(work: Work) -> FastAPI:
    """Two routes that answer 202 and do `work` afterwards, in memory."""
    app = FastAPI()
    tasks = TaskSet()

    # --8<-- [start:background]
    @app.post("/background-tasks", status_code=202)
    async def with_background_tasks(
        request: Request, background: BackgroundTasks
    ) -> Response:
        body = await request.body()
        background.add_task(work, request.headers["webhook-id"], body)
        return Response(status_code=202)  # sent before `work` starts

    # --8<-- [end:background]

    # --8<-- [start:create_task]
    @app.post("/create-task", status_code=202)
    async def with_create_task(request: Request) -> Response:
        body = await request.body()
        tasks.spawn(work(request.headers["webhook-id"], body))  # kept referenced
        return Response(status_code=202)

    # --8<-- [end:create_task]

    return app


# --8<-- [start:bare]
def fire_and_forget(coro: Coroutine[Any, Any, Any]) -> None:
    """Start `coro` and keep no reference to its task. Do not do this."""
    asyncio.create_task(coro)  # noqa: RUF006  (the loop holds it only weakly)


# --8<-- [end:bare]
