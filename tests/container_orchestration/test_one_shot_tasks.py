"""One-shot migrations across replicas: the race, the lock, and a SIGKILL.

Replicas are separate processes. The test releases them together: each prints
``ready`` and waits for ``go`` on stdin, and the test sends ``go`` only when
all of them are ready. A crash is a real SIGKILL of a replica that holds the
lock in the middle of a migration.
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
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from snippets.container_orchestration import one_shot_tasks as ost
from tests.conftest import OutputCheck, Postgres
from tests.processes import read_line

ROOT = Path(__file__).resolve().parents[2]
REPLICAS = 8

# One replica. Modes: "unlocked" (the race window is held open by the test),
# "locked" (start together, then migrate), "hang" (locked, but freeze inside
# migration 2 after its statements ran, before it commits).
REPLICA = """
import dataclasses, json, sys
from snippets.container_orchestration import one_shot_tasks as ost

dsn, identity, mode, lock = sys.argv[1:5]

def barrier():
    print("ready", flush=True)
    sys.stdin.readline()

migrations = list(ost.MIGRATIONS)
if mode == "hang":
    def frozen(conn, sql=migrations[1].apply):
        conn.execute(sql.encode())
        print("migration 2 running", flush=True)
        sys.stdin.readline()  # the test kills the process here
    migrations[1] = dataclasses.replace(migrations[1], apply=frozen)
try:
    if mode == "unlocked":
        with ost.psycopg.connect(dsn, autocommit=True) as conn:
            applied = ost.migrate_unlocked(conn, migrations, identity=identity,
                                           between=barrier)
    else:
        barrier()
        applied = ost.migrate(dsn, migrations, identity=identity, lock=lock)
except ost.psycopg.Error as error:
    print(json.dumps({"error": type(error).__name__}), flush=True)
    sys.exit(1)
print(json.dumps({"applied": applied}), flush=True)
"""


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #


@pytest.fixture
def dsn(postgres: Postgres) -> Iterator[str]:
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        print(f"\nPostgreSQL server {row[0] if row else '?'}")
    yield postgres.dsn


@pytest.fixture
def lock(postgres: Postgres) -> str:
    """An advisory-lock name of the test's own: keys are database-wide."""
    return f"schema-migrations:{postgres.schema}"


def spawn(dsn: str, identity: str, mode: str, lock: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", REPLICA, dsn, identity, mode, lock],
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


def wait_for(check: object, timeout: float = 15) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


Report = dict[str, object]


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


# --------------------------------------------------------------------------- #
# See it break, and the fix
# --------------------------------------------------------------------------- #


def test_without_a_lock_every_replica_runs_the_migration(dsn: str, lock: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(ost.VERSION_TABLE)  # so the only race is the migration's
    summary, results = race(dsn, "unlocked", lock)
    print(summary)
    assert summary.startswith("unlocked: 8 replicas ran the migrations, 1 committed,")
    assert summary.endswith(", 0 found them done")
    assert " 7 crashed (" in summary
    errors = {r["error"] for code, r in results if code != 0}
    # Which one each loser hits depends on how far the winner has got.
    assert errors <= {"DuplicateTable", "DuplicateObject", "UniqueViolation"}
    (one, by), (two, again) = versions(dsn)
    assert (one, two, again) == (1, 2, by)  # the winner applied both
    assert count_plans(dsn) == 2


def test_with_the_advisory_lock_the_migration_runs_once(dsn: str, lock: str) -> None:
    summary, results = race(dsn, "locked", lock)
    print(summary)
    assert summary == (
        "locked: 1 replica ran the migrations, 1 committed, 0 crashed,"
        " 7 found them done"
    )
    assert [code for code, _ in results] == [0] * REPLICAS
    assert sorted(str(r["applied"]) for _, r in results) == ["[1, 2]"] + ["[]"] * 7
    assert [v for v, _ in versions(dsn)] == [1, 2]
    assert count_plans(dsn) == 2


def test_race_output_matches_the_page(
    postgres: Postgres, dsn: str, expected_output: OutputCheck
) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(ost.VERSION_TABLE)
    unlocked, _ = race(dsn, "unlocked", f"{postgres.schema}:a")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE plans; TRUNCATE schema_migrations")
    locked, _ = race(dsn, "locked", f"{postgres.schema}:b")
    # Which duplicate-object error each loser hits depends on timing: name both.
    lines = [
        f"{REPLICAS} replicas start together, migrations 1 and 2 pending",
        re.sub(r" \(.*\)", " (duplicate-object errors)", unlocked),
        locked,
    ]
    print("\n".join(lines))
    expected_output("container_orchestration/one_shot_tasks.race", "\n".join(lines))


# --------------------------------------------------------------------------- #
# A replica killed while it holds the lock
# --------------------------------------------------------------------------- #


def test_killed_replica_releases_the_lock_and_its_half_done_migration_rolls_back(
    dsn: str, lock: str, expected_output: OutputCheck
) -> None:
    a = spawn(dsn, "replica-a", "hang", lock)
    others = [spawn(dsn, f"replica-{n}", "locked", lock) for n in "bcd"]
    procs = [a, *others]
    lines = []
    try:
        release_together([a])
        assert read_line(a) == "migration 2 running"
        assert versions(dsn) == [(1, "replica-a")]  # 2 is not committed yet
        with psycopg.connect(dsn) as conn:  # nor visible to anyone else
            row = conn.execute(
                "SELECT count(*) FROM pg_attribute"
                " WHERE attrelid = 'plans'::regclass AND attname = 'tier'"
            ).fetchone()
        assert row == (0,)
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
    assert [code for code, _ in results] == [0, 0, 0]
    applied = sorted(str(r["applied"]) for _, r in results)
    assert applied == ["[2]", "[]", "[]"]  # 2 ran again, from its first statement
    (one, by_a), (two, by_other) = versions(dsn)
    assert (one, by_a, two) == (1, "replica-a", 2)
    assert by_other in {"replica-b", "replica-c", "replica-d"}
    assert count_plans(dsn) == 2  # the seed rows exist once
    assert lock_waiters(dsn, lock) == (0, 0)
    lines.append(
        f"replica-b, c, d: one re-ran 2 from its first statement,"
        f" {applied.count('[]')} found it done, {len(results)} exited 0"
    )
    lines.append("schema_migrations: 1 by replica-a, 2 by one of b, c, d")
    print("\n".join(lines))
    expected_output("container_orchestration/one_shot_tasks.crash", "\n".join(lines))


def test_a_waiting_replica_gives_up_after_its_lock_timeout(dsn: str, lock: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (ost.lock_key(lock),))
        started = time.monotonic()
        with pytest.raises(ost.MigrationLockTimeout):
            ost.migrate(dsn, ost.MIGRATIONS, identity="late", lock=lock, wait=0.3)
        waited = time.monotonic() - started
    print(f"gave up after {waited:.2f} s")
    assert 0.3 <= waited < 3
    with psycopg.connect(dsn) as conn:  # it did nothing while it waited
        row = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
    assert row == (None,)


def test_migrate_rejects_duplicate_versions(dsn: str) -> None:
    twice = [ost.MIGRATIONS[0], ost.MIGRATIONS[0]]
    with pytest.raises(ValueError, match="unique"):
        ost.migrate(dsn, twice, identity="x")


def test_lock_key_is_the_same_in_another_process() -> None:
    code = "from snippets.container_orchestration import one_shot_tasks as o;"
    code += "print(o.lock_key('schema-migrations'))"
    other = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(other.stdout) == ost.lock_key("schema-migrations")
    assert -(2**63) <= ost.lock_key("schema-migrations") < 2**63
