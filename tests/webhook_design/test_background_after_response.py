"""Tests for snippets/webhook_design/background_after_response/.

Each route runs under uvicorn in a child process on a listening socket on
127.0.0.1 that the test holds: five deliveries, SIGKILL after their 2xx
answers, a restart on the same socket and data. The strong-reference test
runs an event loop in the test process and collects garbage while a task
waits.
"""

from __future__ import annotations

import asyncio
import sqlite3
from importlib.metadata import version
from pathlib import Path

import pytest

from snippets.support import services
from snippets.support.webhook_design_background import (
    MODES,
    CrashResult,
    crash_after_2xx,
)
from snippets.support.webhook_design_background_celery import (
    CeleryResult,
    celery_crash,
)
from snippets.support.webhook_design_frameworks import post, serve_asgi
from snippets.webhook_design.acknowledge_fast import Delivery, Inbox
from snippets.webhook_design.background_after_response import (
    TaskSet,
    create_inbox_app,
)
from snippets.webhook_design.background_after_response.demo import collected
from tests.conftest import require_service

N = 5


@pytest.fixture(scope="module")
def crash(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CrashResult]:
    print(f"\nuvicorn {version('uvicorn')}, fastapi {version('fastapi')}")
    workdir = tmp_path_factory.mktemp("crash")
    return {mode: crash_after_2xx(mode, workdir / mode, N) for mode in MODES}


@pytest.fixture(scope="module")
def celery(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, CeleryResult]:
    """The Celery route on RabbitMQ: web killed after 2xx, worker mid-task."""
    require_service("rabbitmq")
    print(f"\ncelery {version('celery')}, kombu {version('kombu')}")
    workdir = tmp_path_factory.mktemp("celery")
    results = {}
    with services.rabbitmq() as mq:
        for late in (False, True):
            queue = mq.name(f"webhooks_{int(late)}")
            results[late] = celery_crash(workdir / queue, mq.url, queue, acks_late=late)
    return results


@pytest.mark.parametrize("mode", ["background-tasks", "create-task"])
def test_work_after_the_2xx_in_memory_is_lost_on_sigkill(
    crash: dict[str, CrashResult], mode: str
) -> None:
    result = crash[mode]
    assert result.answers == [202] * N  # the provider will not send them again
    assert result.done_before_kill == 0
    assert result.done_after_restart == 0
    assert result.lost == N


def test_the_inbox_loses_nothing_across_sigkill(
    crash: dict[str, CrashResult],
) -> None:
    result = crash["inbox"]
    assert result.answers == [202] * N
    assert result.done_before_kill == 0
    assert result.done_after_restart == N  # the in-progress one after its lease
    assert result.lost == 0


@pytest.mark.timeout(400)  # four worker starts: slow on a loaded machine
def test_celery_keeps_published_work_when_the_web_process_dies(
    celery: dict[bool, CeleryResult],
) -> None:
    for result in celery.values():
        assert result.answers == [202] * N
    assert celery[True].done == N  # nothing lost with the web process


@pytest.mark.timeout(400)
def test_celery_early_ack_loses_the_task_a_killed_worker_was_running(
    celery: dict[bool, CeleryResult],
) -> None:
    assert celery[False].lost == 1  # evt_1: acknowledged as it started
    assert celery[True].lost == 0  # task_acks_late: redelivered


def test_a_task_without_a_reference_is_collected_while_it_waits() -> None:
    alive, reported = asyncio.run(collected(keep=False))
    assert alive == 0
    assert reported == ["Task was destroyed but it is pending!"]


def test_a_task_in_a_task_set_survives_collection() -> None:
    alive, reported = asyncio.run(collected(keep=True))
    assert (alive, reported) == (1, [])


def test_the_task_set_forgets_finished_tasks() -> None:
    async def run() -> tuple[int, int]:
        tasks = TaskSet()
        for _ in range(3):
            tasks.spawn(asyncio.sleep(0))
        started = len(tasks)
        return started, await tasks.drain(timeout=5)

    assert asyncio.run(run()) == (3, 0)


def test_the_inbox_route_answers_503_when_it_cannot_store(tmp_path: Path) -> None:
    path = tmp_path / "inbox.sqlite3"
    inbox = Inbox(path, busy_timeout=0.1)
    done: list[str] = []

    def handler(delivery: Delivery) -> None:
        done.append(delivery.delivery_id)

    app = create_inbox_app(inbox, handler, poll=0.05)
    headers = {"webhook-id": "evt_1"}
    with serve_asgi(app) as url:  # lifespan off here: no worker, only the route
        locker = sqlite3.connect(path, isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        assert post(f"{url}/inbox", b"{}", headers)[0] == 503  # the provider retries
        locker.execute("ROLLBACK")
        locker.close()
        assert post(f"{url}/inbox", b"{}", headers)[0] == 202
    assert (inbox.count("pending"), done) == (1, [])
