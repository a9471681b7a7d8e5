"""Replicas that run one-shot migrations as real processes, released together.

Each replica is the ``migrator`` child program: it prints ``ready`` and waits
for ``go`` on stdin, so ``release_together`` starts them at the same moment.
``race`` runs ``REPLICAS`` of them with or without the advisory lock;
``crash`` kills a replica with SIGKILL while it holds the lock in the middle of
a migration, with three more waiting.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from snippets.container_orchestration import one_shot_tasks as ost
from snippets.support.processes import read_line as _read_line

__all__ = [
    "REPLICAS",
    "Crash",
    "Report",
    "count_plans",
    "crash",
    "lock_waiters",
    "race",
    "race_lines",
    "versions",
]

ROOT = Path(__file__).resolve().parents[2]
CHILDREN = "snippets.support.container_orchestration_children"
REPLICAS = 8
Report = dict[str, object]


def spawn(dsn: str, identity: str, mode: str, lock: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", CHILDREN, "migrator", dsn, identity, mode, lock],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def release_together(procs: list[subprocess.Popen[str]]) -> None:
    """The barrier: wait until every replica is ready, then let all of them go."""
    for proc in procs:
        assert read_line(proc) == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()


def outcome(proc: subprocess.Popen[str]) -> tuple[int, dict[str, object]]:
    """A finished replica's exit code and its JSON report."""
    report = json.loads(read_line(proc))
    return proc.wait(timeout=20), report


def reap(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


def versions(dsn: str) -> list[tuple[int, str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT version, applied_by FROM schema_migrations ORDER BY version"
        ).fetchall()
    return [(int(v), str(by)) for v, by in rows]


def count_plans(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM plans").fetchone()
    assert row is not None
    return int(row[0])


def lock_waiters(dsn: str, lock: str) -> tuple[int, int]:
    """(holders, waiters) of the advisory lock, from ``pg_locks``."""
    key = ost.lock_key(lock) & 0xFFFFFFFFFFFFFFFF
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT granted, count(*) FROM pg_locks WHERE locktype = 'advisory'"
            " AND classid = %s AND objid = %s AND objsubid = 1 GROUP BY granted",
            (str(key >> 32), str(key & 0xFFFFFFFF)),
        ).fetchall()
    counts = {bool(granted): int(n) for granted, n in rows}
    return counts.get(True, 0), counts.get(False, 0)


def wait_for(check: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def race(dsn: str, mode: str, lock: str) -> tuple[str, list[tuple[int, Report]]]:
    """Start ``REPLICAS`` replicas together; summarise what they did."""
    procs = [spawn(dsn, f"replica-{n}", mode, lock) for n in range(REPLICAS)]
    try:
        release_together(procs)
        results = [outcome(proc) for proc in procs]
    finally:
        reap(procs)
    ran = [r for code, r in results if code == 0 and r.get("applied")]
    idle = [r for code, r in results if code == 0 and not r.get("applied")]
    crashed = Counter(str(r["error"]) for code, r in results if code != 0)
    kinds = ", ".join(f"{name} {n}" for name, n in sorted(crashed.items()))
    runners = len(ran) + crashed.total()
    summary = (
        f"{mode}: {runners} replica{'s' * (runners != 1)} ran the migrations,"
        f" {len(ran)} committed, {crashed.total()} crashed"
        + (f" ({kinds})" if kinds else "")
        + f", {len(idle)} found them done"
    )
    return summary, results


def race_lines(dsn: str, schema: str) -> list[str]:
    """The race without and with the lock, as the page shows it."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(ost.VERSION_TABLE)  # so the only race is the migration's
    unlocked, _ = race(dsn, "unlocked", f"{schema}:a")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE plans; TRUNCATE schema_migrations")
    locked, _ = race(dsn, "locked", f"{schema}:b")
    # Which duplicate-object error each loser hits depends on timing: name both.
    return [
        f"{REPLICAS} replicas start together, migrations 1 and 2 pending",
        re.sub(r" \(.*\)", " (duplicate-object errors)", unlocked),
        locked,
    ]


@dataclass(frozen=True)
class Crash:
    """What the three waiting replicas reported after A was killed."""

    lines: list[str]
    results: list[tuple[int, Report]]


def crash(dsn: str, lock: str) -> Crash:
    """Kill replica A in the middle of migration 2 while b, c, d wait."""
    a = spawn(dsn, "replica-a", "hang", lock)
    others = [spawn(dsn, f"replica-{n}", "locked", lock) for n in "bcd"]
    procs = [a, *others]
    lines = []
    try:
        release_together([a])
        assert read_line(a) == "migration 2 running"
        assert versions(dsn) == [(1, "replica-a")]  # 2 is not committed yet
        lines.append("replica-a: took the lock, committed 1, ran 2's statements")
        release_together(others)
        wait_for(lambda: lock_waiters(dsn, lock) == (1, 3))
        lines.append("replica-b, c, d: waiting for the lock")
        os.kill(a.pid, signal.SIGKILL)
        assert a.wait(timeout=10) == -signal.SIGKILL
        lines.append("replica-a: killed (SIGKILL) before 2 committed")
        results = [outcome(proc) for proc in others]
    finally:
        reap(procs)
    applied = sorted(str(r["applied"]) for _, r in results)
    exited = sum(code == 0 for code, _ in results)
    lines.append(
        f"replica-b, c, d: {'one' if applied.count('[2]') == 1 else 'not one'}"
        f" re-ran 2 from its first statement,"
        f" {applied.count('[]')} found it done, {exited} exited 0"
    )
    (_, by_a), *rest = versions(dsn)
    by_other = "one of b, c, d" if rest and rest[0][1] != "replica-a" else "a"
    lines.append(f"schema_migrations: 1 by {by_a}, 2 by {by_other}")
    return Crash(lines, results)


def read_line(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    """One line from a child's stdout (replicas wait on a database: a longer limit)."""
    return _read_line(proc, timeout)
