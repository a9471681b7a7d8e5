"""One-shot migrations across replicas: the race, the lock, and a SIGKILL.

Replicas are separate processes. The test releases them together: each prints
``ready`` and waits for ``go`` on stdin, and the test sends ``go`` only when
all of them are ready. A crash is a real SIGKILL of a replica that holds the
lock in the middle of a migration.

The CronJob part: two runs of one night's job (what a second Job, a retried
Pod or a second CronJob starts) bill twice unless the job records the night
in the transaction that bills it; the manifest is validated, not run.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import psycopg
import pytest
import yaml

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


# --------------------------------------------------------------------------- #
# The nightly job that ran twice (CronJob)
# --------------------------------------------------------------------------- #

CRONJOB = (
    ROOT / "snippets/container_orchestration/manifests/nightly-billing.cronjob.yaml"
)
KUBERNETES_VALIDATE = Path(sys.executable).parent / "kubernetes-validate"
# The values the field's description names (batch/v1 CronJobSpec).
CONCURRENCY_POLICIES = {"Allow", "Forbid", "Replace"}
NIGHT = "nightly-billing:2026-12-06"
T = TypeVar("T")


@pytest.fixture
def billing(dsn: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(ost.TASK_RUNS.encode())
        conn.execute("CREATE TABLE invoices (night text NOT NULL)")
    return dsn


def bill(conn: ost.Conn) -> None:
    conn.execute("INSERT INTO invoices (night) VALUES ('2026-12-06')")


def invoices(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM invoices").fetchone()
    return int(row[0]) if row else 0


def two_jobs(job: Callable[[str], T]) -> list[T]:
    """Run ``job(name)`` in two threads, released together; their results."""
    barrier, results = threading.Barrier(2), list[T]()

    def run(name: str) -> None:
        barrier.wait(timeout=10)
        results.append(job(name))

    threads = [threading.Thread(target=run, args=(n,)) for n in ("job-a", "job-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 2
    return results


def test_two_runs_of_the_nightly_job_bill_twice(billing: str) -> None:
    def job(name: str) -> None:
        with psycopg.connect(billing, autocommit=True) as conn:
            bill(conn)

    two_jobs(job)
    assert invoices(billing) == 2


def test_run_once_bills_the_night_once_whichever_run_starts_first(
    billing: str,
) -> None:
    def job(name: str) -> bool:
        return ost.run_once(billing, NIGHT, bill, identity=name, wait=10)

    assert sorted(two_jobs(job)) == [False, True]
    assert invoices(billing) == 1
    assert not ost.run_once(billing, NIGHT, bill, identity="job-c")  # a retry
    assert ost.run_once(billing, "nightly-billing:2026-12-07", bill, identity="d")
    assert invoices(billing) == 2


def test_a_failed_run_records_nothing_and_the_retry_bills(billing: str) -> None:
    def crash(conn: ost.Conn) -> None:
        bill(conn)
        raise RuntimeError("payment provider timed out")

    with pytest.raises(RuntimeError):
        ost.run_once(billing, NIGHT, crash, identity="job-a")
    assert invoices(billing) == 0
    assert ost.run_once(billing, NIGHT, bill, identity="job-a-retry")
    assert invoices(billing) == 1


def test_a_run_waiting_for_the_lock_gives_up_after_wait(billing: str) -> None:
    with psycopg.connect(billing, autocommit=True) as holder:
        task = f"{NIGHT}:{holder.info.backend_pid}"  # keys are database-wide
        holder.execute("SELECT pg_advisory_lock(%s)", (ost.lock_key(f"task:{task}"),))
        started = time.monotonic()
        with pytest.raises(ost.TaskLockTimeout):
            ost.run_once(billing, task, bill, identity="job-b", wait=0.3)
        assert time.monotonic() - started < 5
    assert invoices(billing) == 0


@pytest.mark.parametrize("version", ["1.28.0", "1.37.0"])
def test_cronjob_manifest_is_valid_kubernetes(version: str) -> None:
    result = subprocess.run(
        [str(KUBERNETES_VALIDATE), "--strict", "-k", version, str(CRONJOB)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    print(result.stdout, result.stderr)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cronjob_forbids_overlap_and_late_starts() -> None:
    cronjob = yaml.safe_load(CRONJOB.read_text())
    assert (cronjob["apiVersion"], cronjob["kind"]) == ("batch/v1", "CronJob")
    spec = cronjob["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    # Set, at least the controller's 10 s check interval, within one night.
    assert 10 <= spec["startingDeadlineSeconds"] < 24 * 3600
    job = spec["jobTemplate"]["spec"]
    # A hung run ends before the next night, or Forbid skips every later one.
    assert 0 < job["activeDeadlineSeconds"] < 24 * 3600
    assert job["template"]["spec"]["restartPolicy"] == "Never"


def test_the_schema_accepts_any_concurrency_policy_string(tmp_path: Path) -> None:
    typo = tmp_path / "typo.cronjob.yaml"
    typo.write_text(
        CRONJOB.read_text().replace(
            "concurrencyPolicy: Forbid", "concurrencyPolicy: Forbidden"
        )
    )
    result = subprocess.run(
        [str(KUBERNETES_VALIDATE), "--strict", "-k", "1.37.0", str(typo)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, "the schema now checks the value: update the page"
    policy = yaml.safe_load(typo.read_text())["spec"]["concurrencyPolicy"]
    assert policy not in CONCURRENCY_POLICIES
