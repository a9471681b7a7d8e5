"""Child programs the container-orchestration tests run as real processes.

Run one with ``python -m snippets.support.container_orchestration_children
<program> ARGS...``; each prints one line per event, flushed, for the test to
read.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["PROGRAMS", "SlowSource", "main"]


class SlowSource:
    """A job source whose second fetch takes ``delay`` seconds, like a slow broker.

    The first fetch returns ``first`` at once; the second prints
    ``fetching <late>``, blocks for ``delay`` seconds and returns ``late``;
    later fetches find nothing.
    """

    def __init__(self, first: str, late: str, delay: float) -> None:
        self._jobs = [first, late]
        self._delay = delay
        self._idle = threading.Event()

    def fetch(self, timeout: float) -> str | None:
        if not self._jobs:
            self._idle.wait(timeout)
            return None
        job = self._jobs.pop(0)
        if not self._jobs:  # the late one
            print(f"fetching {job}", flush=True)
            time.sleep(self._delay)
        return job

    def unread(self) -> list[str]:
        return []


def slow_intake(args: Sequence[str]) -> int:
    """``slow-intake GRACE DELAY``: a pool whose intake is inside a slow fetch."""
    from snippets.container_orchestration import graceful_shutdown as gs

    grace, delay = float(args[0]), float(args[1])
    pool = gs.WorkerPool(
        lambda job: None,
        ack=lambda job: gs.say(f"ack {job}"),
        nack=lambda job: gs.say(f"nack {job}"),
        workers=1,
        prefetch=1,
    )
    return gs.run_pool(pool, SlowSource("early-job", "late-job", delay), grace)


def pinned_cpus(args: Sequence[str]) -> int:
    """``pinned-cpus``: pin to one CPU; print `available_cpus()` and the host count."""
    from snippets.container_orchestration.cpu_quota_sizing import available_cpus

    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    print(available_cpus(), os.cpu_count())
    return 0


def budget_cpus(args: Sequence[str]) -> int:
    """``budget-cpus ROOT``: print the CPUs `cpu_budget` gives on the tree at ROOT.

    Run it with ``-X cpu_count=N`` or ``PYTHON_CPU_COUNT=N`` to see the override.
    """
    from snippets.container_orchestration.cpu_quota_sizing import cpu_budget

    print(cpu_budget(Path(args[0])).cpus)
    return 0


def replica(args: Sequence[str]) -> int:
    """``replica DSN IDENTITY fenced|unfenced pause|- RESOURCE ENTRY LEASE``.

    Lead once and write once (with ``pause``, stop between the lease check and
    the write until a line arrives on stdin: the test freezes the process
    there), then stay leader until the lease is lost or SIGTERM arrives.
    """
    from snippets.container_orchestration import leader_election as le

    dsn, identity, mode, pause, resource, entry, lease_name = args
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    write = le.fenced_write if mode == "fenced" else le.unfenced_write

    def lead(lease: le.Lease, lost: threading.Event) -> None:
        print("leader", lease.token, flush=True)
        with le.connect(dsn) as conn:
            if lost.is_set():  # the check a careful leader makes before writing
                return
            if pause == "pause":
                print("checked", flush=True)
                sys.stdin.readline()  # the test freezes the process here
            accepted = write(conn, lease, resource, entry)
            print("accepted" if accepted else "rejected", flush=True)
        lost.wait()
        print("stepped-down", flush=True)
        stop.set()

    # Long next to the scheduling delays of a loaded machine: under 1 s the new
    # leader could miss its own renew deadline before it writes.
    timing = le.Timing(lease_duration=3.0, renew_deadline=1.8, retry_period=0.6)
    elector = le.LeaderElector(dsn, lease=lease_name, identity=identity, timing=timing)
    elector.run(lead, stop)
    return 0


def migrator(args: Sequence[str]) -> int:
    """``migrator DSN IDENTITY unlocked|locked|hang LOCK``: one replica's start-up.

    Prints ``ready`` and waits for a line on stdin before it migrates (with
    ``unlocked``, between reading the versions and applying them: the race
    window held open). ``hang`` takes the lock, then freezes inside migration
    2 after its statements ran, before it commits. Prints a JSON report.
    """
    import psycopg

    from snippets.container_orchestration import one_shot_tasks as ost

    dsn, identity, mode, lock = args

    def barrier() -> None:
        print("ready", flush=True)
        sys.stdin.readline()

    migrations = list(ost.MIGRATIONS)
    if mode == "hang":
        sql = migrations[1].apply
        assert isinstance(sql, str)

        def frozen(conn: psycopg.Connection[Any]) -> None:
            conn.execute(sql.encode())
            print("migration 2 running", flush=True)
            sys.stdin.readline()  # the test kills the process here

        migrations[1] = dataclasses.replace(migrations[1], apply=frozen)
    try:
        if mode == "unlocked":
            with psycopg.connect(dsn, autocommit=True) as conn:
                applied = ost.migrate_unlocked(
                    conn, migrations, identity=identity, between=barrier
                )
        else:
            barrier()
            applied = ost.migrate(dsn, migrations, identity=identity, lock=lock)
    except psycopg.Error as error:
        print(json.dumps({"error": type(error).__name__}), flush=True)
        return 1
    print(json.dumps({"applied": applied}), flush=True)
    return 0


def lock_key(args: Sequence[str]) -> int:
    """``lock-key NAME``: print the advisory-lock key of NAME."""
    from snippets.container_orchestration.one_shot_tasks import lock_key as key

    print(key(args[0]))
    return 0


def backend(args: Sequence[str]) -> int:
    """``backend [--name N] [--host H] [--port P] [--drain-delay S] [--grace S]
    [--fail-readiness | --keep-readiness]``: one readiness-gated backend."""
    import argparse

    from snippets.container_orchestration.readiness_gated_drain import (
        GatedServer,
        serve_with_readiness_drain,
    )

    parser = argparse.ArgumentParser(prog="backend")
    parser.add_argument("--name", default=os.environ.get("HOSTNAME", "backend"))
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--drain-delay",
        type=float,
        default=float(os.environ.get("DRAIN_DELAY_SECONDS", "0")),
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=float(os.environ.get("SHUTDOWN_GRACE_SECONDS", "20")),
    )
    readiness = parser.add_mutually_exclusive_group()
    readiness.add_argument("--fail-readiness", dest="fail", action="store_true")
    readiness.add_argument("--keep-readiness", dest="fail", action="store_false")
    parser.set_defaults(fail=os.environ.get("FAIL_READINESS_ON_SIGTERM", "1") != "0")
    options = parser.parse_args(args)
    server = GatedServer((options.host, options.port), options.name)
    return serve_with_readiness_drain(
        server, options.drain_delay, options.grace, fail_readiness=options.fail
    )


PROGRAMS: dict[str, Callable[[Sequence[str]], int]] = {
    "backend": backend,
    "budget-cpus": budget_cpus,
    "lock-key": lock_key,
    "migrator": migrator,
    "pinned-cpus": pinned_cpus,
    "replica": replica,
    "slow-intake": slow_intake,
}


def main(argv: Sequence[str]) -> int:
    """Run the program named by ``argv[0]`` with the rest as its arguments."""
    if not argv or argv[0] not in PROGRAMS:
        print(f"usage: PROGRAM ARGS... (PROGRAM: {', '.join(PROGRAMS)})")
        return 2
    return PROGRAMS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
