"""Leader election with fencing tokens: a paused leader, for real.

The leader is a separate process. The test freezes it with SIGSTOP between its
leadership check and its write, keeps it frozen past its lease while a second
replica process takes over and writes, then thaws it with SIGCONT. Without a
fence the stale write lands; with one, PostgreSQL refuses it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from snippets.container_orchestration import leader_election as le
from snippets.support.container_orchestration_proxy import BlackHoleProxy
from tests.conftest import OutputCheck, Postgres
from tests.processes import read_line

ROOT = Path(__file__).resolve().parents[2]
LEASE, RESOURCE, ENTRY = "billing", "invoices", "invoice batch 42"
TIMING = le.Timing(lease_duration=1.0, renew_deadline=0.6, retry_period=0.2)

# One replica: lead once, write once (optionally frozen between check and
# write), stay leader until the lease is lost or SIGTERM arrives.
REPLICA = """
import signal, sys, threading
from snippets.container_orchestration import leader_election as le

dsn, identity, write_mode, pause = sys.argv[1:5]
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
write = le.fenced_write if write_mode == "fenced" else le.unfenced_write

def lead(lease, lost):
    print("leader", lease.token, flush=True)
    with le.connect(dsn) as conn:
        if lost.is_set():  # the check a careful leader makes before writing
            return
        if pause == "pause":
            print("checked", flush=True)
            sys.stdin.readline()  # the test freezes the process here
        accepted = write(conn, lease, sys.argv[5], sys.argv[6])
        print("accepted" if accepted else "rejected", flush=True)
    lost.wait()
    print("stepped-down", flush=True)
    stop.set()

timing = le.Timing(lease_duration=1.0, renew_deadline=0.6, retry_period=0.2)
elector = le.LeaderElector(dsn, lease=sys.argv[7], identity=identity, timing=timing)
elector.run(lead, stop)
"""


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


def spawn(dsn: str, identity: str, mode: str, pause: bool) -> subprocess.Popen[str]:
    args = [dsn, identity, mode, "pause" if pause else "-", RESOURCE, ENTRY, LEASE]
    return subprocess.Popen(
        [sys.executable, "-c", REPLICA, *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def wait_stopped(pid: int, timeout: float = 5) -> None:
    """Wait until the kernel reports the process as stopped (state T)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "T":
            return
        time.sleep(0.01)
    raise TimeoutError(f"process {pid} did not stop")


def reap(*procs: subprocess.Popen[str]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
            proc.wait(timeout=10)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


def ledger_tokens(dsn: str) -> list[int]:
    with le.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT token FROM ledger WHERE resource = %s AND entry = %s ORDER BY id",
            (RESOURCE, ENTRY),
        ).fetchall()
    return [int(row[0]) for row in rows]


def split_brain(dsn: str, mode: str) -> tuple[list[str], float]:
    """Freeze leader A past its lease, let B take over, thaw A; narrate it.

    Returns the narration and how long A took to step down after SIGCONT.
    """
    a = spawn(dsn, "replica-a", mode, pause=True)
    b: subprocess.Popen[str] | None = None
    try:
        assert read_line(a) == "leader 1"
        assert read_line(a) == "checked"  # A checked its lease, about to write
        os.kill(a.pid, signal.SIGSTOP)
        wait_stopped(a.pid)
        lines = [
            f"{mode} writes",
            "replica-a: leader with token 1",
            "replica-a: checked its lease, then froze (SIGSTOP) before writing",
        ]
        b = spawn(dsn, "replica-b", mode, pause=False)
        token_b = int(read_line(b).removeprefix("leader "))
        lines.append(f"replica-b: lease expired, leader with token {token_b}")
        lines.append(f"replica-b: write with token {token_b} {read_line(b)}")
        assert a.stdin is not None
        a.stdin.write("go\n")
        a.stdin.flush()
        resumed = time.monotonic()
        os.kill(a.pid, signal.SIGCONT)
        lines.append(f"replica-a: thawed (SIGCONT), write with token 1 {read_line(a)}")
        assert read_line(a) == "stepped-down"
        stepped_down = time.monotonic() - resumed
        lines.append("replica-a: its renew deadline had passed, stepped down")
        assert a.wait(timeout=10) == 0
        b.send_signal(signal.SIGTERM)
        assert read_line(b) == "stepped-down"
        assert b.wait(timeout=10) == 0
    finally:
        reap(a, *([b] if b else []))
    tokens = ledger_tokens(dsn)
    listed = ", ".join(map(str, tokens))
    entries = f"{len(tokens)} entr{'y' if len(tokens) == 1 else 'ies'}"
    lines.append(f"ledger: {entries} for {ENTRY!r} (tokens {listed})")
    return lines, stepped_down


# --------------------------------------------------------------------------- #
# See it break, and the fix
# --------------------------------------------------------------------------- #


def test_without_fencing_the_paused_leaders_write_lands(
    dsn: str, expected_output: OutputCheck
) -> None:
    lines, stepped_down = split_brain(dsn, "unfenced")
    print("\n".join(lines))
    assert ledger_tokens(dsn) == [2, 1]  # the batch ran twice, stale write last
    assert stepped_down < 5 * TIMING.retry_period + 1
    expected_output(
        "container_orchestration/leader_election.unfenced", "\n".join(lines)
    )


def test_with_fencing_the_paused_leaders_write_is_refused(
    dsn: str, expected_output: OutputCheck
) -> None:
    lines, stepped_down = split_brain(dsn, "fenced")
    print("\n".join(lines))
    assert ledger_tokens(dsn) == [2]
    with le.connect(dsn) as conn:
        fence = conn.execute(
            "SELECT token FROM fences WHERE resource = %s", (RESOURCE,)
        )
        assert fence.fetchone() == (2,)
    assert stepped_down < 5 * TIMING.retry_period + 1
    expected_output("container_orchestration/leader_election.fenced", "\n".join(lines))


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


def test_demo_output_matches_the_page(dsn: str, expected_output: OutputCheck) -> None:
    lines = le.demo(dsn)
    print("\n".join(lines))
    assert lines[1] == "tokens in order of leadership: 1, 2, 3, 4, 5, 6"
    assert lines[2].endswith(": 0")
    expected_output("container_orchestration/leader_election.demo", "\n".join(lines))
