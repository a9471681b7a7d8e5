"""A worker process that the ack-deadlines demos and tests kill mid-job.

    python -m snippets.support.message_queues_ack_deadlines_child redis|nats ARGS

ARGS are ``URL STREAM CONSUMER`` for Redis and ``URL STREAM DURABLE`` for NATS.

It reads one message, prints ``started ...`` and then "works" for a minute, so
the parent can SIGKILL it between reading and acknowledging.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time

import nats as nats_py
import redis as redis_py
from nats.aio.msg import Msg

from snippets.message_queues.ack_deadlines import Fields, consume, work_loop
from snippets.support.message_queues_ack_deadlines_workers import (
    ACK_WAIT,
    GROUP,
    HEARTBEAT_EVERY,
)

__all__ = ["nats_worker", "redis_worker"]


def redis_worker(url: str, stream: str, consumer: str) -> None:
    client = redis_py.Redis.from_url(url, decode_responses=True, socket_timeout=5)

    def handler(entry_id: str, fields: Fields) -> None:
        print(f"started {entry_id}", flush=True)
        time.sleep(60)  # "working" until killed

    consume(client, stream, GROUP, consumer, handler, threading.Event())


async def nats_worker(url: str, stream: str, durable: str) -> None:
    nc = await nats_py.connect(url, connect_timeout=2)
    sub = await nc.jetstream().pull_subscribe_bind(durable, stream)

    async def job(msg: Msg) -> None:
        print(f"started delivery {msg.metadata.num_delivered}", flush=True)
        await asyncio.sleep(60)  # "working" until killed

    await work_loop(
        sub,
        job,
        asyncio.Event(),
        heartbeat_every=HEARTBEAT_EVERY,
        retry_delay=ACK_WAIT,
    )


if __name__ == "__main__":
    match sys.argv[1:]:
        case ["redis", url, stream, consumer]:
            redis_worker(url, stream, consumer)
        case ["nats", url, stream, durable]:
            asyncio.run(nats_worker(url, stream, durable))
        case _:
            sys.exit("usage: redis URL STREAM CONSUMER | nats URL STREAM DURABLE")
