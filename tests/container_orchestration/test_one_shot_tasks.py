"""One-shot migrations across replicas: the race, the lock, and a SIGKILL.

Replicas are separate processes. The test releases them together: each prints
``ready`` and waits for ``go`` on stdin, and the test sends ``go`` only when
all of them are ready. A crash is a real SIGKILL of a replica that holds the
lock in the middle of a migration.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import psycopg
import pytest

from snippets.container_orchestration import one_shot_tasks as ost
from snippets.support.container_orchestration_migrations import (
    REPLICAS,
    count_plans,
    crash,
    lock_waiters,
    race,
    versions,
)
from tests.conftest import ROOT, Postgres

CHILDREN = "snippets.support.container_orchestration_children"


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


# --------------------------------------------------------------------------- #
# A replica killed while it holds the lock
# --------------------------------------------------------------------------- #


def test_killed_replica_releases_the_lock_and_its_half_done_migration_rolls_back(
    dsn: str, lock: str
) -> None:
    run = crash(dsn, lock)
    print("\n".join(run.lines))
    assert [code for code, _ in run.results] == [0, 0, 0]
    applied = sorted(str(r["applied"]) for _, r in run.results)
    assert applied == ["[2]", "[]", "[]"]  # 2 ran again, from its first statement
    (one, by_a), (two, by_other) = versions(dsn)
    assert (one, by_a, two) == (1, "replica-a", 2)
    assert by_other in {"replica-b", "replica-c", "replica-d"}
    assert count_plans(dsn) == 2  # the seed rows exist once
    assert lock_waiters(dsn, lock) == (0, 0)


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
    other = subprocess.run(
        [sys.executable, "-m", CHILDREN, "lock-key", "schema-migrations"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(other.stdout) == ost.lock_key("schema-migrations")
    assert -(2**63) <= ost.lock_key("schema-migrations") < 2**63
