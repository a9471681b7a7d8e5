"""Work after the 2xx, from the durable inbox of acknowledge-fast."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from snippets.webhook_design.acknowledge_fast import Handler, Inbox, InboxWorker

__all__ = ["create_inbox_app"]

log = logging.getLogger(__name__)


# --8<-- [start:inbox]
def create_inbox_app(
    inbox: Inbox, handler: Handler, *, poll: float = 1.0, lease: float = 30.0
) -> FastAPI:
    """Commit each delivery to `inbox`, then answer 202; a worker runs it.

    The worker thread starts and stops with the application (lifespan).
    Whatever is pending when the process dies is there at the next start;
    a delivery that was in progress comes back when its `lease` runs out.
    """
    worker = InboxWorker(inbox, handler, poll=poll, lease=lease)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        worker.start()  # picks up what the last process left behind
        yield
        await asyncio.to_thread(worker.stop)  # finish the current delivery

    app = FastAPI(lifespan=lifespan)

    @app.post("/inbox", status_code=202)
    async def receive(request: Request) -> Response:
        body = await request.body()
        delivery_id = request.headers["webhook-id"]
        try:  # a blocking, fsync'ing write: off the event loop
            await asyncio.to_thread(inbox.add, delivery_id, body)
        except sqlite3.Error:
            log.exception("could not store delivery %s", delivery_id)
            return Response(status_code=503)  # the provider retries
        return Response(status_code=202)  # committed before this line

    return app


# --8<-- [end:inbox]
