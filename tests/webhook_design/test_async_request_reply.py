"""Asynchronous request-reply over real HTTP on loopback, with SQLite stores.

Both sides are real servers on threads. Races are made deterministic with
events: the client is held between receiving the 202 and storing it until the
callback has been handled, and the server holds its first answer to a POST
until the client has given up on it and retried.
"""

from __future__ import annotations

import platform
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from snippets.support.webhook_design_async import (
    ATTEMPTS,
    WAIT,
    early_callback,
    exchange,
    job_id_of,
    job_server,
    jobs_on_server,
    polling,
    retried_post,
    total,
)
from snippets.support.webhook_design_job_server import JobServerProcess
from snippets.webhook_design.async_request_reply import (
    CallbackReceiver,
    JobClient,
    JobServer,
    JobService,
    request,
    retry_after,
)
from snippets.webhook_design.async_request_reply.broken import (
    KeylessClient,
    RecordAfterResponseClient,
)
from snippets.webhook_design.verify_then_dedupe import new_secret, signature_headers


@pytest.fixture(scope="module", autouse=True)
def versions() -> None:
    """Print what the tests ran against (visible with ``pytest -s``)."""
    print(f"\nSQLite {sqlite3.sqlite_version}, Python {platform.python_version()}")


def sign(secret: str, msg_id: str, body: bytes) -> dict[str, str]:
    return signature_headers([secret], msg_id, int(time.time()), body)


# --------------------------------------------------------------------------- #
# (a) The callback arrives before the client has stored the 202
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("client_type", "outcome", "state", "sent"),
    [
        (RecordAfterResponseClient, "unknown", "pending", "failed"),
        (JobClient, "matched", "succeeded", "delivered"),
    ],
)
def test_callback_before_the_202_is_stored(
    tmp_path: Path, client_type: type[JobClient], outcome: str, state: str, sent: str
) -> None:
    """The client is held between the 202 and its record until the callback
    has been handled: without the record first, the callback is unknown."""
    result = early_callback(tmp_path, client_type)
    assert result.server_state == "succeeded"
    assert result.outcome == {outcome: 1}
    assert result.client_state == state
    assert result.sent == {sent: 1}  # a 404 is final: not retried


# --------------------------------------------------------------------------- #
# (b) The POST times out and the client retries
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(("client_type", "jobs"), [(KeylessClient, 2), (JobClient, 1)])
def test_post_times_out_and_is_retried(
    tmp_path: Path, client_type: type[JobClient], jobs: int
) -> None:
    result = retried_post(tmp_path, client_type)
    urls = {f"/status/{answer.job_id}" for answer in result.answers}
    assert len(result.answers) == 2  # the first POST and its retry both arrived
    assert (result.jobs, result.runs, len(urls)) == (jobs, jobs, jobs)
    assert result.client_job == result.answers[-1].job_id
    assert [answer.replayed for answer in result.answers] == [False, jobs == 1]


def test_a_key_without_a_body_match_is_refused(tmp_path: Path) -> None:
    with job_server(tmp_path, total, new_secret()) as server:
        headers = {"Idempotency-Key": '"k-1"', "Content-Type": "application/json"}
        first = request(
            "POST", f"{server.url}/jobs", body=b'{"input":[1]}', headers=headers
        )
        again = request(
            "POST", f"{server.url}/jobs", body=b'{"input":[1]}', headers=headers
        )
        other = request(
            "POST", f"{server.url}/jobs", body=b'{"input":[2]}', headers=headers
        )
        too_long = request(
            "POST",
            f"{server.url}/jobs",
            body=b'{"input":[1]}',
            headers={"Idempotency-Key": "k" * 256},
        )
        missing = request("POST", f"{server.url}/jobs", body=b'{"input":[1]}')
        invalid = request(
            "POST", f"{server.url}/jobs", body=b"[1]", headers={"Idempotency-Key": "x"}
        )
        assert server.service.drain(WAIT)
    assert (first.status, again.status) == (202, 202)
    assert first.headers["location"] == again.headers["location"]
    assert (other.status, too_long.status) == (422, 400)
    assert (missing.status, invalid.status) == (400, 400)
    assert jobs_on_server(server) == 1


# --------------------------------------------------------------------------- #
# (c) The callback endpoint is down: polling still learns the outcome
# --------------------------------------------------------------------------- #


def test_callback_down_polling_learns_completion(tmp_path: Path) -> None:
    result = polling(tmp_path)
    assert (result.state, result.result) == ("succeeded", {"sum": 6})
    assert result.sent == {"failed": 1}  # after ATTEMPTS tries to a closed port
    assert result.polls == ["200 running", "303 succeeded"]
    assert result.delays == [1.0]  # the Retry-After the server sent
    assert ATTEMPTS == 3


def test_wait_times_out_and_close_interrupts(tmp_path: Path) -> None:
    release = threading.Event()

    def work(job_input: Any) -> Any:
        assert release.wait(WAIT)
        return total(job_input)

    with job_server(tmp_path, work, new_secret()) as server:
        client = JobClient(server.url, tmp_path / "client.db")
        key = client.submit([1])
        with pytest.raises(TimeoutError):
            client.wait(key, timeout=0.5)  # Retry-After is 1 s: past the deadline
        release.set()
        assert server.service.drain(WAIT)
        assert client.wait(key, timeout=WAIT) == "succeeded"


# --------------------------------------------------------------------------- #
# The HTTP exchange, status codes and all
# --------------------------------------------------------------------------- #


def test_http_exchange(tmp_path: Path) -> None:
    result = exchange(tmp_path)
    statuses = [answer.status for _, answer in result.steps]
    assert statuses == [202, 202, 422, 200, 303, 200, 409, 202, 200, 200, 404]
    first, again = result.steps[0][1], result.steps[1][1]
    assert first.headers["location"] == again.headers["location"]
    assert result.steps[5][1].json() == {"sum": 6}
    assert result.steps[-2][1].json()["state"] == "cancelled"


# --------------------------------------------------------------------------- #
# Signatures, duplicates, failures, restarts
# --------------------------------------------------------------------------- #


def test_receiver_rejects_forgeries_and_counts_duplicates(tmp_path: Path) -> None:
    secret = new_secret()
    client = JobClient("http://127.0.0.1:9", tmp_path / "client.db")
    with closing(client.connect()) as conn:
        conn.execute("INSERT INTO requests (key, created_at) VALUES ('k', 0)")
    body = b'{"idempotency_key":"k","job_id":"j","state":"succeeded"}'
    with CallbackReceiver(client, secret) as receiver:

        def send(headers: dict[str, str]) -> int:
            return request("POST", receiver.url, body=body, headers=headers).status

        signed = sign(secret, "j.succeeded", body)
        forged = sign(new_secret(), "j.succeeded", body)
        statuses = [send(forged), send(signed), send(signed)]
    assert statuses == [401, 204, 204]
    assert client.callbacks == {"matched": 1, "duplicate": 1}
    assert client.state("k") == "succeeded"


def test_failed_job_reaches_the_client(tmp_path: Path) -> None:
    secret = new_secret()

    def broken(job_input: Any) -> Any:
        raise RuntimeError("disk full")

    with job_server(tmp_path, broken, secret) as server:
        client = JobClient(server.url, tmp_path / "client.db")
        with CallbackReceiver(client, secret) as receiver:
            client.callback_url = receiver.url
            key = client.submit([1])
            assert server.service.drain(WAIT)
        status = request("GET", _status_url(server, client, key))
        with pytest.raises(LookupError):
            client.result(key)
    assert client.state(key) == "failed"
    assert status.status == 200
    assert status.json()["error"] == {"error": "RuntimeError"}
    assert "retry-after" not in status.headers


def _status_url(server: JobServer, client: JobClient, key: str) -> str:
    return f"{server.url}/status/{job_id_of(client, key)}"


def test_a_restart_resumes_unfinished_jobs(tmp_path: Path) -> None:
    path = tmp_path / "server.db"
    JobService(path, total, secret=new_secret(), workers=0).close()
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute(
            "INSERT INTO jobs (id, idempotency_key, fingerprint, input, state,"
            " created_at) VALUES ('crashed', 'k', 'f', '[1, 2]', 'running', 0)"
        )  # a previous process died in the middle of this job
    service = JobService(path, total, secret=new_secret())
    try:
        assert service.drain(WAIT)
        status = service.status("crashed")
    finally:
        service.close()
    assert status is not None
    assert (status.state, status.result) == ("succeeded", {"sum": 3})


# --------------------------------------------------------------------------- #
# Crashes and peers: the callback outbox and the job lease
# --------------------------------------------------------------------------- #


def test_a_callback_survives_a_kill_after_the_commit(tmp_path: Path) -> None:
    """The job's result is committed and its callback is on the wire when the
    server is killed; the restarted server delivers the callback."""
    secret, db = new_secret(), tmp_path / "server.db"
    arrived, release, matched = threading.Event(), threading.Event(), threading.Event()
    first_call = threading.Lock()

    class Held(JobClient):
        def on_callback(self, event: Any) -> str:
            if first_call.acquire(blocking=False):  # the first delivery only
                arrived.set()  # the server committed and is sending
                assert release.wait(WAIT)
                raise sqlite3.OperationalError("not stored")  # answered 503
            outcome = super().on_callback(event)
            matched.set()
            return outcome

    with JobServerProcess(db, secret, callback_timeout=1.0) as first:
        client = Held(first.url, tmp_path / "client.db")
        with CallbackReceiver(client, secret) as receiver:
            client.callback_url = receiver.url
            key = client.submit([1, 2, 3])
            assert arrived.wait(WAIT)
            first.kill()
            release.set()
            with JobServerProcess(db, secret, callback_timeout=1.0):
                assert matched.wait(WAIT), "the callback died with the process"
    assert client.callbacks == {"matched": 1}
    assert client.state(key) == "succeeded"


def test_a_peer_does_not_take_a_live_job(tmp_path: Path) -> None:
    """A second process starts while the first runs a job: it leaves the job
    alone, and the first process finishes it."""
    secret, db, runs = new_secret(), tmp_path / "server.db", []

    def counted(job_input: Any) -> Any:
        runs.append(job_input)
        return total(job_input)

    with JobServerProcess(db, secret, hold=True) as owner:
        client = JobClient(owner.url, tmp_path / "client.db")
        key = client.submit([1, 2])
        assert owner.expect("started ") == "[1, 2]"
        peer = JobService(db, counted, secret=secret)
        try:
            assert peer.drain(WAIT)
            during = peer.status(job_id_of(client, key))
        finally:
            peer.close()
        owner.release()
        state = client.wait(key, timeout=WAIT)
        result = client.result(key)
    assert during is not None and during.state == "running"
    assert runs == []
    assert (state, result) == ("succeeded", {"sum": 3})


def test_a_job_whose_owner_died_is_taken_over(tmp_path: Path) -> None:
    """The owner is killed mid-job; once its 1 s lease has run out, a peer's
    sweep claims the job and runs it."""
    secret, db, runs = new_secret(), tmp_path / "server.db", []
    ran = threading.Event()

    def counted(job_input: Any) -> Any:
        runs.append(job_input)
        ran.set()
        return total(job_input)

    with JobServerProcess(db, secret, hold=True, lease=1.0) as owner:
        client = JobClient(owner.url, tmp_path / "client.db")
        key = client.submit([4, 5])
        assert owner.expect("started ") == "[4, 5]"
        owner.kill()
    peer = JobService(db, counted, secret=secret, lease=1.0)
    try:
        assert ran.wait(WAIT), "nobody took the orphaned job over"
        assert peer.drain(WAIT)
        status = peer.status(job_id_of(client, key))
    finally:
        peer.close()
    assert runs == [[4, 5]]
    assert status is not None and (status.state, status.result) == (
        "succeeded",
        {"sum": 9},
    )


def test_retry_after_parsing() -> None:
    assert retry_after("3", 1.0) == 3.0
    assert retry_after(None, 1.5) == 1.5
    assert retry_after("soon", 2.0) == 2.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 2.0) == 0.0
