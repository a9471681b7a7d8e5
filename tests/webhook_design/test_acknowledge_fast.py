"""Tests for snippets/webhook_design/acknowledge_fast/.

Real HTTP on loopback: a `ThreadingHTTPServer` receiver and an `http.client`
sender with a 1 s timeout, scaled down from GitHub's 10 s. The crash tests run
the receiver as a child process and kill it with SIGKILL after it answered.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from snippets.support.webhook_design_ack import (
    DEMO_SECRET,
    PAYLOAD,
    CrashResult,
    SlowHandlerResult,
    crash_after_ack,
    slow_handler,
)
from snippets.webhook_design.acknowledge_fast import (
    Delivery,
    Inbox,
    InboxReceiver,
    InboxWorker,
    deliver,
)
from tests.conftest import ROOT

TIMEOUT, WORK, ATTEMPTS = 1.0, 1.5, 3


@pytest.fixture(scope="module", autouse=True)
def sqlite_version() -> None:
    print(f"\nSQLite {sqlite3.sqlite_version} (the store the tests ran against)")


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SlowHandlerResult]:
    """One delivery to each receiver whose handler outlasts the sender's timeout."""
    workdir = tmp_path_factory.mktemp("slow")
    return {
        name: slow_handler(name, workdir, timeout=TIMEOUT, work=WORK, attempts=ATTEMPTS)
        for name in ("sync", "inbox")
    }


@pytest.fixture(scope="module")
def crash(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CrashResult]:
    """Each receiver as a process, killed with SIGKILL after its 2xx, restarted."""
    workdir = tmp_path_factory.mktemp("crash")
    return {mode: crash_after_ack(mode, workdir) for mode in ("memory", "inbox")}


@contextmanager
def running_inbox(
    path: Path, *, busy_timeout: float = 2.0
) -> Iterator[tuple[InboxReceiver, Inbox]]:
    inbox = Inbox(path, busy_timeout=busy_timeout)
    server = InboxReceiver(("127.0.0.1", 0), DEMO_SECRET, inbox)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,))
    thread.start()
    try:
        yield server, inbox
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def send(url: str, delivery_id: str = "evt_1", secret: str = DEMO_SECRET) -> str:
    [attempt] = deliver(url, delivery_id, PAYLOAD, secret, timeout=5, attempts=1)
    return str(attempt)


# -- see it break ------------------------------------------------------------- #


def test_slow_handler_makes_the_sender_retry_and_runs_every_retry(
    slow: dict[str, SlowHandlerResult],
) -> None:
    result = slow["sync"]
    assert [str(a) for a in result.attempts] == ["timeout"] * ATTEMPTS
    assert not any(a.ok for a in result.attempts)  # the provider counts a failure
    assert result.effects == ATTEMPTS  # and the work ran once per attempt


def test_acknowledged_delivery_in_memory_is_lost_when_the_process_dies(
    crash: dict[str, CrashResult],
) -> None:
    result = crash["memory"]
    assert result.sender_saw.status == 202  # the provider will not send it again
    assert result.recovered == 0
    assert result.effects == 0


# -- the pattern holds ------------------------------------------------------------ #


def test_inbox_answers_within_the_deadline_and_runs_the_work_once(
    slow: dict[str, SlowHandlerResult],
) -> None:
    result = slow["inbox"]
    assert [a.status for a in result.attempts] == [202]
    assert result.effects == 1


def test_inbox_keeps_an_acknowledged_delivery_across_a_kill(
    crash: dict[str, CrashResult],
) -> None:
    result = crash["inbox"]
    assert result.sender_saw.status == 202
    assert result.recovered == 1
    assert result.effects == 1


def test_a_duplicate_is_acknowledged_and_stored_once(tmp_path: Path) -> None:
    with running_inbox(tmp_path / "inbox.sqlite3") as (server, inbox):
        assert [send(server.url), send(server.url)] == ["202", "202"]
    assert inbox.count("pending") == 1


def test_concurrent_copies_of_one_delivery_are_stored_once(tmp_path: Path) -> None:
    copies = 8
    start = threading.Barrier(copies)
    answers: list[str] = []

    def sender(url: str) -> None:
        start.wait(timeout=5)
        answers.append(send(url))

    # Eight writers queue for SQLite's lock; leave them time on a busy machine.
    with running_inbox(tmp_path / "inbox.sqlite3", busy_timeout=5) as (server, inbox):
        threads = [
            threading.Thread(target=sender, args=(server.url,)) for _ in range(copies)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
            assert not thread.is_alive()
    assert answers == ["202"] * copies
    assert inbox.count("pending") == 1


def test_a_bad_signature_is_refused_and_not_stored(tmp_path: Path) -> None:
    other = "whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
    with running_inbox(tmp_path / "inbox.sqlite3") as (server, inbox):
        assert send(server.url, secret=other) == "401"
    assert inbox.count("pending") == 0


def test_the_library_checks_the_timestamp_before_the_signature() -> None:
    """standardwebhooks 1.1.0: a stale, forged delivery fails on its age."""
    headers = {
        "webhook-id": "evt_1",
        "webhook-timestamp": "1000000000",  # 2001: far outside 5 minutes
        "webhook-signature": "v1,Zm9yZ2Vk",  # not a valid signature either
    }
    with pytest.raises(WebhookVerificationError, match="timestamp too old"):
        Webhook(DEMO_SECRET).verify(PAYLOAD, headers)


def test_no_2xx_when_the_inbox_cannot_store(tmp_path: Path) -> None:
    path = tmp_path / "inbox.sqlite3"
    with running_inbox(path, busy_timeout=0.2) as (server, inbox):
        with closing(sqlite3.connect(path, isolation_level=None)) as locker:
            locker.execute("BEGIN IMMEDIATE")  # another writer holds the lock
            assert send(server.url) == "503"  # so the provider tries again
            locker.execute("ROLLBACK")
        assert inbox.count("pending") == 0
        assert send(server.url) == "202"
    assert inbox.count("pending") == 1


def test_worker_retries_a_failed_delivery_then_marks_it_done(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path / "inbox.sqlite3")
    inbox.add("evt_1", PAYLOAD)
    seen: list[int] = []

    def flaky(delivery: Delivery) -> None:
        seen.append(delivery.attempt)
        if delivery.attempt == 1:
            raise ConnectionError("downstream refused")

    worker = InboxWorker(inbox, flaky, retry_in=0)
    assert worker.run_once()
    assert worker.run_once()
    assert not worker.run_once()  # nothing left
    assert seen == [1, 2]
    assert (inbox.count("done"), inbox.count("pending")) == (1, 0)


def test_worker_buries_a_delivery_that_keeps_failing(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path / "inbox.sqlite3")
    inbox.add("evt_1", PAYLOAD)

    def broken(delivery: Delivery) -> None:
        raise ValueError("cannot parse")

    worker = InboxWorker(inbox, broken, retry_in=0, max_attempts=2)
    assert worker.run_once()
    assert worker.run_once()
    assert not worker.run_once()
    assert (inbox.count("dead"), inbox.count("pending")) == (1, 0)


def test_a_delivery_that_kills_its_worker_is_buried(tmp_path: Path) -> None:
    """The handler SIGKILLs its own process: no exception, no release. Each
    restart claims the same delivery again; after ``max_attempts`` claims the
    next claim buries it and the deliveries behind it are processed."""
    db, max_attempts = tmp_path / "inbox.sqlite3", 3
    inbox = Inbox(db)
    inbox.add("evt_poison", b'{"type":"crash"}')
    inbox.add("evt_1", PAYLOAD)
    inbox.add("evt_2", PAYLOAD)
    command = [sys.executable, "-m", "snippets.support.webhook_design_inbox_worker"]
    command += [str(db), "--max-attempts", str(max_attempts)]
    codes: list[int] = []
    processed: list[str] = []
    while not codes or codes[-1] != 0:
        assert len(codes) <= max_attempts + 2, f"restarted forever: {codes}"
        run = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=30
        )
        codes.append(run.returncode)
        processed += run.stdout.split()[1::2]
    assert codes == [-signal.SIGKILL] * max_attempts + [0]
    assert processed == ["evt_1", "evt_2"]
    assert (inbox.count("dead"), inbox.count("done")) == (1, 2)


def test_a_worker_that_lost_its_lease_cannot_complete(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path / "inbox.sqlite3")
    inbox.add("evt_1", PAYLOAD)
    slow_one = inbox.claim(lease=0)  # expires at once: another worker may claim
    fast_one = inbox.claim(lease=30)
    assert slow_one is not None and fast_one is not None
    assert (slow_one.attempt, fast_one.attempt) == (1, 2)
    assert inbox.claim(lease=30) is None  # leased: nobody else gets it
    assert not inbox.complete(slow_one)
    assert inbox.complete(fast_one)
    assert inbox.count("done") == 1


def test_worker_thread_processes_new_deliveries_and_stops(tmp_path: Path) -> None:
    done = threading.Event()
    with running_inbox(tmp_path / "inbox.sqlite3") as (server, inbox):
        worker = InboxWorker(inbox, lambda delivery: done.set(), poll=30)
        worker.start()
        assert send(server.url) == "202"
        assert done.wait(timeout=5)  # woken by the insert, not by the 30 s poll
        assert worker.stop(timeout=5)
    assert inbox.count("done") == 1


def test_done_deliveries_are_pruned_only_after_the_retention(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path / "inbox.sqlite3")
    inbox.add("evt_1", PAYLOAD)
    InboxWorker(inbox, lambda delivery: None).run_once()
    assert inbox.prune(older_than=3600) == 0
    assert inbox.prune(older_than=0) == 1
    assert inbox.add("evt_1", PAYLOAD)  # pruned: the same id is new again
