"""Leader election with fencing tokens: a paused leader, for real.

The leader is a separate process. The test freezes it with SIGSTOP between its
leadership check and its write, keeps it frozen past its lease while a second
replica process takes over and writes, then thaws it with SIGCONT. Without a
fence the stale write lands; with one, PostgreSQL refuses it.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from snippets.container_orchestration import leader_election as le
from snippets.container_orchestration.leader_election.demo import demo
from snippets.support.container_orchestration_proxy import BlackHoleProxy
from snippets.support.container_orchestration_replicas import (
    LEASE,
    RESOURCE,
    split_brain,
)
from tests.conftest import ROOT, Postgres

TIMING = le.Timing(lease_duration=3.0, renew_deadline=1.8, retry_period=0.6)


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #


@pytest.fixture
def dsn(postgres: Postgres) -> Iterator[str]:
    """The test's schema, with the lease, fence and ledger tables."""
    with le.connect(postgres.dsn) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        print(f"\nPostgreSQL server {row[0] if row else '?'}")
        le.create_schema(conn, lease=LEASE, resource=RESOURCE)
    yield postgres.dsn


# --------------------------------------------------------------------------- #
# See it break, and the fix
# --------------------------------------------------------------------------- #


def test_without_fencing_the_paused_leaders_write_lands(dsn: str) -> None:
    run = split_brain(dsn, "unfenced")
    print("\n".join(run.lines))
    assert run.tokens == [2, 1]  # the batch ran twice, stale write last
    assert "replica-a: thawed (SIGCONT), write with token 1 accepted" in run.lines
    assert run.stepped_down < 5 * TIMING.retry_period + 1


def test_with_fencing_the_paused_leaders_write_is_refused(dsn: str) -> None:
    run = split_brain(dsn, "fenced")
    print("\n".join(run.lines))
    assert run.tokens == [2]
    assert "replica-a: thawed (SIGCONT), write with token 1 rejected" in run.lines
    with le.connect(dsn) as conn:
        fence = conn.execute(
            "SELECT token FROM fences WHERE resource = %s", (RESOURCE,)
        )
        assert fence.fetchone() == (2,)
    assert run.stepped_down < 5 * TIMING.retry_period + 1


# --------------------------------------------------------------------------- #
# The lease itself
# --------------------------------------------------------------------------- #


def test_the_token_grows_on_every_acquisition_and_only_one_replica_wins(
    dsn: str,
) -> None:
    ttl = TIMING.ttl
    with le.connect(dsn) as one, le.connect(dsn) as two:
        first = le.try_acquire(one, LEASE, "a", ttl)
        assert first == le.Lease(LEASE, "a", 1)
        assert le.try_acquire(two, LEASE, "b", ttl) is None  # still held
        assert le.renew(one, first, ttl)
        assert le.release(one, first)
        assert not le.renew(one, first, ttl)  # released: renewing is refused
        second = le.try_acquire(two, LEASE, "b", ttl)
        assert second == le.Lease(LEASE, "b", 2)
        assert not le.release(one, first)  # a stale holder cannot release it


def test_racing_replicas_acquire_an_expired_lease_once(dsn: str) -> None:
    racers = 8
    barrier = threading.Barrier(racers, timeout=10)
    won: list[le.Lease] = []

    def race(n: int) -> None:
        with le.connect(dsn) as conn:
            barrier.wait()
            lease = le.try_acquire(conn, LEASE, f"r{n}", TIMING.ttl)
            if lease is not None:
                won.append(lease)

    threads = [threading.Thread(target=race, args=(n,)) for n in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert len(won) == 1
    assert won[0].token == 1


def test_timing_rejects_a_renew_deadline_not_shorter_than_the_lease() -> None:
    with pytest.raises(ValueError, match="lease_duration"):
        le.Timing(lease_duration=10, renew_deadline=10, retry_period=2)
    with pytest.raises(ValueError, match="retry_period"):
        le.Timing(lease_duration=15, renew_deadline=2, retry_period=2)
    assert le.Timing() == le.Timing(15.0, 10.0, 2.0)


def test_leader_steps_down_before_its_lease_expires_when_renewals_hang(
    dsn: str,
) -> None:
    """Renewals time out (the lease row is locked); the leader must quit in time."""
    stop, leading = threading.Event(), threading.Event()
    verdict: list[bool] = []

    def lead(lease: le.Lease, lost: threading.Event) -> None:
        leading.set()
        assert lost.wait(timeout=10), "the leader never noticed it lost the lease"
        with le.connect(dsn) as conn:  # is the lease still valid by the DB clock?
            row = conn.execute(
                "SELECT clock_timestamp() < expires_at FROM leases WHERE name = %s",
                (LEASE,),
            ).fetchone()
        verdict.append(bool(row and row[0]))
        stop.set()

    # A lease long enough to tell "stepped down in time" from "too late".
    timing = le.Timing(lease_duration=2.0, renew_deadline=0.6, retry_period=0.2)
    elector = le.LeaderElector(dsn, lease=LEASE, identity="solo", timing=timing)
    runner = threading.Thread(target=elector.run, args=(lead, stop))
    runner.start()
    blocker = psycopg.connect(dsn)  # holds the lease row: every renewal hangs
    try:
        assert leading.wait(timeout=10)
        blocker.execute("SELECT 1 FROM leases WHERE name = %s FOR UPDATE", (LEASE,))
        runner.join(timeout=20)
        assert not runner.is_alive()
    finally:
        blocker.rollback()
        blocker.close()
        stop.set()
    assert verdict == [True], "the leader was still acting after its lease expired"


def test_leader_cut_off_by_a_partition_steps_down_by_its_renew_deadline(
    dsn: str,
) -> None:
    """The lease connection goes through a proxy that stops forwarding.

    The server never sees the renewal, so its statement timeout never fires,
    and the proxy's kernel still acknowledges every segment, so TCP notices
    nothing either. Only a deadline armed apart from the I/O can end the term.
    """
    stop, leading = threading.Event(), threading.Event()
    noticed: list[float] = []
    info = conninfo_to_dict(dsn)
    upstream = (str(info.get("host", "127.0.0.1")), int(str(info.get("port", 5432))))
    with BlackHoleProxy(upstream) as proxy:
        via_proxy = make_conninfo(dsn, host="127.0.0.1", port=proxy.port)
        timing = le.Timing(lease_duration=3.0, renew_deadline=1.0, retry_period=0.2)
        elector = le.LeaderElector(
            via_proxy, lease=LEASE, identity="cut-off", timing=timing
        )
        cut: list[float] = []

        def lead(lease: le.Lease, lost: threading.Event) -> None:
            leading.set()
            proxy.black_hole()
            cut.append(time.monotonic())
            if lost.wait(timeout=timing.lease_duration + 2):
                noticed.append(time.monotonic() - cut[0])
            stop.set()

        runner = threading.Thread(target=elector.run, args=(lead, stop), daemon=True)
        runner.start()
        assert leading.wait(timeout=10)
        runner.join(timeout=timing.lease_duration + 10)
        stop.set()
        assert noticed, "the leader never noticed that it had lost the lease"
        print(f"stepped down {noticed[0]:.2f} s after the partition")
        # Stepped down no later than the renew deadline after the last renewal
        # that went through (which was before the cut), plus scheduling slack.
        assert noticed[0] <= timing.renew_deadline + 1.0 < timing.lease_duration
        assert not runner.is_alive(), "the elector hung after the partition"


def test_leaders_take_turns_without_overlap(dsn: str) -> None:
    lines = demo(dsn)
    print("\n".join(lines))
    assert lines[1] == "tokens in order of leadership: 1, 2, 3, 4, 5, 6"
    assert lines[2] == "terms that overlapped the next one: 0"
    assert lines[3] == "fenced writes accepted: 6"


# --------------------------------------------------------------------------- #
# On Kubernetes: the clients' timing rules and the Lease (no API server here)
# --------------------------------------------------------------------------- #

LEASE_MANIFEST = (
    ROOT / "snippets/container_orchestration/manifests/leader-election.lease.yaml"
)
KUBERNETES_VALIDATE = Path(sys.executable).parent / "kubernetes-validate"


def test_kube_controller_manager_timing_breaks_no_rule() -> None:
    timing = le.Timing()  # 15 s, 10 s, 2 s
    lease, deadline, retry = (
        timing.lease_duration,
        timing.renew_deadline,
        timing.retry_period,
    )
    assert le.leads_for(deadline, retry, client="client-go") == 12
    assert le.leads_for(deadline, retry, client="python") == 12
    for client in ("client-go", "python"):
        assert le.timing_problems(lease, deadline, retry, client=client) == []


def test_python_client_steps_down_only_at_a_whole_retry_period() -> None:
    # renew_loop: tries at 3, 6, 9, 12 s after the last renewal, a 3 s sleep
    # after each failure, and the deadline checked only before a try.
    assert le.leads_for(10, 3, client="python") == 15
    assert le.leads_for(10, 3, client="client-go") == 13
    assert le.timing_problems(15, 10, 3, client="client-go") == []
    assert le.timing_problems(15, 10, 3, client="python") == [
        "a follower may lead after 15 s, the old leader acts up to 15 s"
    ]


def test_python_clients_example_timing_lets_two_replicas_lead() -> None:
    # kubernetes 37.0.2, kubernetes/leaderelection/example.py: 17 s, 15 s, 5 s.
    assert le.timing_problems(17, 15, 5, client="python") == [
        "a follower may lead after 17 s, the old leader acts up to 20 s"
    ]


@pytest.mark.parametrize(
    ("lease", "deadline", "retry", "rule"),
    [
        (10, 10, 2, "the lease duration must be longer than the renew deadline"),
        (15, 12, 10, "the renew deadline must be longer than 1.2 retry periods"),
        (1.0, 0.6, 0.2, "the Python client needs every duration to be 1 s or more"),
    ],
)
def test_timings_both_clients_refuse(
    lease: float, deadline: float, retry: float, rule: str
) -> None:
    assert rule in le.timing_problems(lease, deadline, retry, client="python")


def test_the_postgresql_elector_accepts_exactly_the_safe_client_go_timings() -> None:
    for lease, deadline, retry in itertools.product(range(1, 21), repeat=3):
        safe = not le.timing_problems(lease, deadline, retry, client="client-go")
        try:
            le.Timing(lease_duration=lease, renew_deadline=deadline, retry_period=retry)
        except ValueError:
            accepted = False
        else:
            accepted = True
        assert accepted == safe, (lease, deadline, retry)


@pytest.mark.parametrize("version", ["1.28.0", "1.37.0"])
def test_lease_and_role_are_valid_kubernetes(version: str) -> None:
    result = subprocess.run(
        [str(KUBERNETES_VALIDATE), "--strict", "-k", version, str(LEASE_MANIFEST)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    print(result.stdout, result.stderr)
    assert result.returncode == 0, result.stdout + result.stderr


def test_lease_fields_and_role_verbs_match_the_page() -> None:
    docs = {d["kind"]: d for d in yaml.safe_load_all(LEASE_MANIFEST.read_text())}
    lease = docs["Lease"]
    assert lease["apiVersion"] == "coordination.k8s.io/v1"
    assert set(lease["spec"]) == {
        "holderIdentity",
        "leaseDurationSeconds",
        "acquireTime",
        "renewTime",
        "leaseTransitions",
    }
    assert lease["spec"]["leaseDurationSeconds"] == le.Timing().lease_duration
    rules = docs["Role"]["rules"]
    assert {verb for rule in rules for verb in rule["verbs"]} == {
        "get",
        "update",
        "create",
    }
    for rule in rules:
        assert rule["apiGroups"] == ["coordination.k8s.io"]
        assert rule["resources"] == ["leases"]
        # RBAC cannot restrict create by name: such a rule would never match.
        named = rule.get("resourceNames") == [lease["metadata"]["name"]]
        assert named != ("create" in rule["verbs"])
