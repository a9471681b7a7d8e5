"""The cases the background-after-response page shows.

``python -m snippets.webhook_design.background_after_response.demo CASE``,
with CASE one of ``crash`` (five deliveries to each route under uvicorn in a
child process, SIGKILL after the 2xx answers, a restart, what was done) and
``gc`` (a task with no strong reference, collected while it waits) and
``celery`` (a route that publishes a Celery task, on RabbitMQ: the web
process killed after its 2xx, then the worker killed mid-task, with and
without ``task_acks_late``).
"""

from __future__ import annotations

import asyncio
import gc
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from snippets.support import services
from snippets.support.cases import run_cases
from snippets.support.webhook_design_background import MODES, crash_after_2xx
from snippets.support.webhook_design_background_celery import celery_crash
from snippets.webhook_design.background_after_response import TaskSet
from snippets.webhook_design.background_after_response.broken import (
    fire_and_forget,
)

__all__ = ["collected"]


async def collected(keep: bool) -> tuple[int, list[str]]:
    """Start a waiting task, with or without a strong reference; collect.

    Returns how many such tasks the loop still knows after ``gc.collect()``,
    and what the loop reported.
    """
    loop = asyncio.get_running_loop()
    reported: list[str] = []
    loop.set_exception_handler(lambda _, context: reported.append(context["message"]))

    async def wait_for_reply() -> None:
        await loop.create_future()  # a reply only this task is waiting for

    tasks = TaskSet()
    if keep:
        tasks.spawn(wait_for_reply())
    else:
        fire_and_forget(wait_for_reply())
    await asyncio.sleep(0)  # the task starts and waits
    gc.collect()
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)
    return len(others), reported


def show_gc() -> Iterator[str]:
    for keep, label in ((False, "bare create_task"), (True, "TaskSet.spawn")):
        alive, reported = asyncio.run(collected(keep))
        yield f"{label}: tasks alive after gc.collect(): {alive}"
        for message in reported:
            yield f"  loop reported: {message}"


def show_crash() -> Iterator[str]:
    yield "route | 2xx answers | done before SIGKILL | done after restart | lost"
    with tempfile.TemporaryDirectory() as tmp:
        for mode in MODES:
            result = crash_after_2xx(mode, Path(tmp) / mode)
            ok = sum(200 <= status < 300 for status in result.answers)
            yield (
                f"{mode} | {ok} | {result.done_before_kill} | "
                f"{result.done_after_restart} | {result.lost}"
            )


def show_celery() -> Iterator[str]:
    yield "task_acks_late | 2xx answers | done after both kills | lost"
    with tempfile.TemporaryDirectory() as tmp, services.rabbitmq() as mq:
        for late in (False, True):
            queue = mq.name(f"webhooks_{int(late)}")
            result = celery_crash(Path(tmp) / queue, mq.url, queue, acks_late=late)
            ok = sum(200 <= status < 300 for status in result.answers)
            yield f"{late} | {ok} | {result.done} | {result.lost}"


if __name__ == "__main__":
    sys.exit(run_cases({"celery": show_celery, "crash": show_crash, "gc": show_gc}))
