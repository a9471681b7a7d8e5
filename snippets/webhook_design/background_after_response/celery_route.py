"""Work after the 2xx through Celery: durable from the broker on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from celery import Celery  # type: ignore[import-untyped]
from fastapi import FastAPI, Request, Response
from kombu.exceptions import OperationalError

__all__ = ["create_celery", "create_celery_app"]

log = logging.getLogger(__name__)


# --8<-- [start:celery]
def create_celery(
    broker_url: str,
    queue: str,
    work: Callable[[str, bytes], None],
    *,
    acks_late: bool = True,
) -> Celery:
    """A Celery app with one task, ``webhooks.process``, on `queue`."""
    app = Celery("webhooks", broker=broker_url)
    app.conf.update(
        task_default_queue=queue,
        task_acks_late=acks_late,  # default False: acked as the task starts
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        # pyamqp: wait for RabbitMQ's publisher confirm before delay() returns
        broker_transport_options={"confirm_publish": True},
    )

    @app.task(name="webhooks.process")  # type: ignore[untyped-decorator]
    def process(delivery_id: str, body: str) -> None:
        work(delivery_id, body.encode())  # JSON carries text, not bytes

    return app


def create_celery_app(celery: Celery) -> FastAPI:
    """Publish each delivery as a task, then answer 202."""
    app = FastAPI()
    process = celery.tasks["webhooks.process"]

    @app.post("/celery", status_code=202)
    async def receive(request: Request) -> Response:
        body = await request.body()
        delivery_id = request.headers["webhook-id"]
        try:  # a blocking publish, confirmed by the broker: off the loop
            await asyncio.to_thread(process.delay, delivery_id, body.decode())
        except OperationalError:
            log.exception("could not publish delivery %s", delivery_id)
            return Response(status_code=503)
        return Response(status_code=202)

    return app


# --8<-- [end:celery]
