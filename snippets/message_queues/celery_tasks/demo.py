"""The cases the Celery page shows, each against real workers and brokers.

    python -m snippets.message_queues.celery_tasks.demo CASE

Workers are ``celery worker`` processes (snippets/support/message_queues_celery.py);
every task writes what it did to a Redis list, which the cases read back.
"""

from __future__ import annotations

import re
import sys
from contextlib import ExitStack
from typing import Any

import redis as redis_py

from snippets.message_queues.celery_tasks.settings import (
    RELIABLE,
    redis_transport_options,
)
from snippets.support.cases import run_cases
from snippets.support.message_queues_celery import (
    TIMEOUT,
    Lab,
    consumer_count,
    rabbitmq_lab,
    ready_count,
    redis_lab,
    wait_until,
)

__all__: list[str] = []


# --8<-- [start:kill]
def kill_mid_task(
    lab: Lab, conf: dict[str, Any], *, pool: str, acked: bool
) -> tuple[tuple[int, int], list[str]]:
    """Kill a worker with SIGKILL while t1 runs; a second worker takes over.

    With a prefetch of one, RabbitMQ sends t2 to worker a only once t1 is
    acked, so "t2 no longer ready" is the sign that t1's ack has arrived.
    ``acked`` says which state to wait for before the kill. Returns the
    number of ready messages before and after the kill, and the journal.
    """
    conf = {**conf, "worker_prefetch_multiplier": 1}
    queue, log, gate = lab.queue("tasks"), lab.journal.key("log"), lab.journal.key("g")
    url = lab.journal.url
    with lab.worker(conf, "a", queue, pool=pool) as a:
        lab.send(conf, "step", queue, url, log, "t1", gate)
        lab.send(conf, "step", queue, url, log, "t2")
        lab.wait_for(log, "start t1 a")
        before = 0 if acked else 1
        wait_until(lambda: ready_count(lab.broker, queue) == before, TIMEOUT, "ack")
        a.kill()  # the worker and its pool process, mid-task
    wait_until(lambda: consumer_count(lab.broker, queue) == 0, TIMEOUT, "no consumer")
    after = ready_count(lab.broker, queue)
    with lab.worker(conf, "b", queue, pool=pool):
        lab.open_gate(gate)
        lab.wait_for(log, "end t2 b redelivered" if acked else "end t2 b")
    return (before, after), lab.lines(log)


# --8<-- [end:kill]


def kill_lines(label: str, counts: tuple[int, int], lines: list[str]) -> list[str]:
    runs = [line for line in lines if " t1 " in line]
    started = sum(line.startswith("start") for line in runs)
    finished = sum(line.startswith("end") for line in runs)
    return [
        f"{label}:",
        f"  ready in the queue: {counts[0]} before SIGKILL, {counts[1]} after",
        *(f"  {line}" for line in runs),
        f"  t1 started {started}x, finished {finished}x"
        + ("  -> lost" if finished == 0 else ""),
    ]


def show_kill() -> list[str]:
    lines = []
    cases = [
        ("task_acks_late=False (default), prefork", {}, "prefork", True),
        ("task_acks_late=True, prefork", {"task_acks_late": True}, "prefork", False),
        ("task_acks_late=False, --pool=solo", {}, "solo", False),
    ]
    for label, conf, pool, acked in cases:
        with rabbitmq_lab() as lab:
            counts, journal = kill_mid_task(lab, conf, pool=pool, acked=acked)
        lines += kill_lines(label, counts, journal)
    return lines


# --8<-- [start:poison-run]
def poison_runs(lab: Lab, task: str, *, stop_after: int | None = None) -> list[str]:
    """Send a task whose pool process dies under it; return its runs.

    One prefork worker with two pool processes. With ``stop_after`` the worker
    is killed once the task has run that often. Otherwise, once the task has
    failed, a second task shows the worker has moved on; then the worker stops
    (a warm shutdown sends the acks it still holds), and the queue shows
    whether any copy of the task was left behind.
    """
    queue, log, url = lab.queue("tasks"), lab.journal.key("log"), lab.journal.url
    after = lab.journal.key("after")
    with lab.worker({}, "a", queue, pool="prefork", concurrency=2) as a:
        lab.send({}, task, queue, url, log)
        if stop_after is not None:
            wait_until(lambda: len(lab.lines(log)) >= stop_after, TIMEOUT, "runs")
            a.kill()
            return lab.lines(log)[:stop_after]
        wait_until(lambda: "handler raised error" in a.log(), TIMEOUT, "failure")
        lab.send({}, "step", queue, url, after, "next")
        lab.wait_for(after, "end next a")
        failed = re.findall(r"Task handler raised error: (.*)", a.log())
        a.stop()
    wait_until(lambda: consumer_count(lab.broker, queue) == 0, TIMEOUT, "no consumer")
    return [
        *lab.lines(log),
        f"then: {failed[-1] if failed else 'nothing'}",
        f"left in the queue after the worker is gone: {ready_count(lab.broker, queue)}",
    ]


# --8<-- [end:poison-run]


def show_poison() -> list[str]:
    lines = []
    for task, stop in (("poison", None), ("poison_retry", None)):
        with rabbitmq_lab() as lab:
            got = poison_runs(lab, task, stop_after=stop)
        lines += [f"{task}:", *(f"  {line}" for line in got)]
    with rabbitmq_lab() as lab:
        got = poison_runs(lab, "poison_requeue", stop_after=3)
    lines += ["poison_requeue:", *(f"  {line}" for line in got)]
    lines.append("  ... requeued again after every death; the demo stopped the worker")
    return lines


# --8<-- [start:prefetch]
def who_ran_what(
    lab: Lab, conf: dict[str, Any], shorts: int = 6
) -> dict[str, list[str]]:
    """A long task and ``shorts`` short ones; worker b starts once a is busy.

    Worker a (one pool process) may hold ``worker_prefetch_multiplier``
    unacked messages, plus the long task once an early ack has released it;
    b starts when the queue shows that a has taken all of those. Returns, per
    worker, the tasks it ran in the order they finished.
    """
    queue, log, gate = lab.queue("tasks"), lab.journal.key("log"), lab.journal.key("g")
    url = lab.journal.url
    lab.send(conf, "step", queue, url, log, "long", gate)
    for i in range(1, shorts + 1):
        lab.send(conf, "step", queue, url, log, f"s{i}")
    window = conf.get("worker_prefetch_multiplier", 4)
    held = window + (0 if conf.get("task_acks_late") else 1)
    with lab.worker(conf, "a", queue, pool="prefork") as a:
        lab.wait_for(log, "start long a")
        left = shorts + 1 - held
        wait_until(lambda: ready_count(lab.broker, queue) == left, TIMEOUT, "window")
        with lab.worker(conf, "b", queue, pool="prefork"):
            lab.wait_for(log, f"end s{shorts} b")  # b ran all it could get
            lab.open_gate(gate)
            wait_until(
                lambda: sum(x.startswith("end") for x in lab.lines(log)) > shorts,
                TIMEOUT,
                "every task",
            )
        del a
    ran: dict[str, list[str]] = {"a": [], "b": []}
    for line in lab.lines(log):
        verb, label, name, *_ = line.split()
        if verb == "end":
            ran[name].append(label)
    return ran


# --8<-- [end:prefetch]


def show_prefetch() -> list[str]:
    lines = []
    cases = [
        ("worker_prefetch_multiplier=4 (default), task_acks_late=False", {}),
        (
            "worker_prefetch_multiplier=1, task_acks_late=False",
            {
                "worker_prefetch_multiplier": 1,
            },
        ),
        ("worker_prefetch_multiplier=1, task_acks_late=True", RELIABLE),
    ]
    for label, conf in cases:
        with rabbitmq_lab() as lab:
            ran = who_ran_what(lab, conf)
        lines += [
            f"{label}:",
            f"  a (busy with long) ran: {' '.join(ran['a'])}",
            f"  b (idle)           ran: {' '.join(ran['b'])}",
        ]
    return lines


# --8<-- [start:eta]
def eta_runs(
    lab: Lab, timeout: int, *, other: int | None = None, countdown: float = 7
) -> list[str]:
    """One task with a countdown on the Redis broker; returns the journal.

    Worker a consumes the task's queue with visibility timeout ``timeout``.
    With ``other``, worker b consumes a different queue of the same Redis
    database with that visibility timeout.
    """
    prefix = f"{lab.journal.prefix}:"  # every kombu key of this run

    def conf(seconds: int) -> dict[str, Any]:
        options = redis_transport_options(seconds, sweep_seconds=1, prefix=prefix)
        return {"broker_transport_options": options}

    queue, log, url = lab.queue("eta"), lab.journal.key("log"), lab.journal.url
    with ExitStack() as stack, redis_py.Redis.from_url(url) as r:
        stack.enter_context(lab.worker(conf(timeout), "a", queue))
        if other is not None:
            stack.enter_context(lab.worker(conf(other), "b", lab.queue("other")))
        lab.send(conf(timeout), "step", queue, url, log, "t1", countdown=countdown)

        def settled() -> bool:  # ran, and no copy left anywhere
            lines = lab.lines(log)
            ends = sum(line.startswith("end") for line in lines)
            idle = ends == len(lines) - ends
            return (
                ends > 0
                and idle
                and not r.hlen(f"{prefix}unacked")
                and not (r.llen(f"{prefix}{queue}"))
            )

        wait_until(settled, countdown + TIMEOUT, "the countdown task")
    return lab.lines(log)


# --8<-- [end:eta]


def eta_lines(label: str, lines: list[str]) -> list[str]:
    runs = [line for line in lines if line.startswith("end")]
    again = sum(line.endswith("redelivered") for line in runs)
    return [f"{label}: t1 ran {len(runs)}x, redelivered copies {again}"]


def show_eta() -> list[str]:
    lines = []
    with redis_lab() as lab:
        lines += eta_lines("countdown 7 s, visibility_timeout 4 s", eta_runs(lab, 4))
    with redis_lab() as lab:
        lines += eta_lines("countdown 7 s, visibility_timeout 60 s", eta_runs(lab, 60))
    with redis_lab() as lab:
        got = eta_runs(lab, 60, other=4)
    lines += eta_lines("countdown 7 s, a: 60 s, b (another queue): 4 s", got)
    return lines


# --8<-- [start:once-run]
def charge_twice(lab: Lab, task: str, order: str) -> tuple[list[str], int]:
    """Send the same charge twice, as a redelivery or a retried send would."""
    queue, log, url = lab.queue("tasks"), lab.journal.key("log"), lab.journal.url
    lab.journal.key("log:balance")
    with lab.worker(RELIABLE, "a", queue, pool="prefork"):
        for _ in range(2):
            lab.send(RELIABLE, task, queue, url, log, order, 100)
        wait_until(lambda: len(lab.lines(log)) == 2, TIMEOUT, "two runs")
    with redis_py.Redis.from_url(url) as r:
        return lab.lines(log), int(r.get(f"{log}:balance") or 0)


# --8<-- [end:once-run]


def show_once() -> list[str]:
    lines = []
    for task, label in (("charge_locked", "lock"), ("charge_deduped", "dedupe")):
        with rabbitmq_lab() as lab:
            runs, balance = charge_twice(lab, task, "order-1")
        lines.append(f"{label}: {', '.join(runs)}; balance {balance}")
    return lines


if __name__ == "__main__":
    sys.exit(
        run_cases(
            {
                "kill": show_kill,
                "poison": show_poison,
                "prefetch": show_prefetch,
                "eta": show_eta,
                "once": show_once,
            }
        )
    )
