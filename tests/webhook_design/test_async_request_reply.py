"""Asynchronous request-reply over real HTTP on loopback, with SQLite stores.

Both sides are real servers on threads. Races are made deterministic with
events: the client is held between receiving the 202 and storing it until the
callback has been handled, and the server holds its first answer to a POST
until the client has given up on it and retried.
"""

from __future__ import annotations

import json
import platform
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks

from snippets.support.webhook_design_job_server import JobServerProcess
from snippets.webhook_design.async_request_reply import (
    Accepted,
    CallbackReceiver,
    JobClient,
    JobServer,
    JobService,
    KeylessClient,
    RecordAfterResponseClient,
    Response,
    SignatureError,
    Work,
    new_secret,
    request,
    retry_after,
    sign_headers,
    verify_headers,
)
from tests.conftest import OutputCheck

WAIT = 10.0  # seconds; every wait in this module is bounded by it
CLOSED_PORT_URL = "http://127.0.0.1:1/callbacks"  # nothing listens on port 1
ATTEMPTS = 3  # callback deliveries the server tries
TIMEOUT = 1.0  # the client's timeout per POST in the retry test


def log_versions() -> None:
    """Print what the test ran against (visible with ``pytest -s``)."""
    print(f"SQLite {sqlite3.sqlite_version}, Python {platform.python_version()}")


def total(job_input: Any) -> Any:
    """The work: add the numbers."""
    return {"sum": sum(job_input)}


@contextmanager
def job_server(
    directory: Path,
    work: Work,
    secret: str,
    service_type: type[JobService] = JobService,
    **options: Any,
) -> Iterator[JobServer]:
    service = service_type(directory / "server.db", work, secret=secret, **options)
    with JobServer(service) as server:
        yield server


def jobs_on_server(server: JobServer) -> int:
    with closing(server.service.connect()) as conn:
        (count,) = conn.execute("SELECT count(*) FROM jobs").fetchone()
    return int(count)


# --------------------------------------------------------------------------- #
# (a) The callback arrives before the client has stored the 202
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("client_type", "outcome", "state", "name"),
    [
        (RecordAfterResponseClient, "unknown", "pending", "race-record-after"),
        (JobClient, "matched", "succeeded", "race-pre-registered"),
    ],
)
def test_callback_before_the_202_is_stored(
    tmp_path: Path,
    client_type: type[JobClient],
    outcome: str,
    state: str,
    name: str,
    expected_output: OutputCheck,
) -> None:
    log_versions()
    secret = new_secret()
    handled = threading.Event()

    class Held(client_type):  # type: ignore[valid-type,misc]
        def on_callback(self, event: Any) -> str:
            try:
                return str(super().on_callback(event))
            finally:
                handled.set()

        def _record_accepted(self, key: str, job_id: str, status_url: str) -> None:
            # The 202 is here; hold it until the callback has been handled.
            assert handled.wait(WAIT), "the callback never came"
            super()._record_accepted(key, job_id, status_url)

    with job_server(tmp_path, total, secret) as server:
        client = Held(server.url, tmp_path / "client.db")
        with CallbackReceiver(client, secret) as receiver:
            client.callback_url = receiver.url
            key = client.submit([1, 2, 3])
            assert server.service.drain(WAIT)
        server_state = server.service.status(str(_job_id(client, key)))
    assert server_state is not None and server_state.state == "succeeded"
    assert client.callbacks == {outcome: 1}
    assert client.state(key) == state
    delivered = server.service.callbacks
    assert delivered == ({"delivered": 1} if outcome == "matched" else {"failed": 1})
    report = [
        f"{client_type.__name__}: the callback arrived before the 202 was stored",
        f"callback: {outcome}"
        + (" (answered 404, dropped)" if outcome == "unknown" else ""),
        f"request state on the client: {client.state(key)}"
        f" (the server says {server_state.state})",
    ]
    expected_output(f"webhook_design/async_request_reply.{name}", "\n".join(report))


def _job_id(client: JobClient, key: str) -> str:
    with closing(client.connect()) as conn:
        row = conn.execute("SELECT job_id FROM requests WHERE key = ?", (key,))
        found = row.fetchone()
    assert found is not None
    return str(found[0])


# --------------------------------------------------------------------------- #
# (b) The POST times out and the client retries
# --------------------------------------------------------------------------- #


class SlowFirstAnswer(JobService):
    """Holds its first answer until the client has timed out and sent again."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.answers: list[Accepted] = []
        self.retried = threading.Event()
        self._lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def accept(self, body: bytes, key: str | None) -> Accepted:
        with self._lock:
            first = not self.answers and not self.retried.is_set()
            if not first:
                self.retried.set()
        accepted = super().accept(body, key)
        with self._lock:
            self.answers.append(accepted)
        if first:  # the job is committed; the answer is late
            assert self.retried.wait(WAIT), "the client never retried"
        return accepted


@pytest.mark.parametrize(("client_type", "jobs"), [(KeylessClient, 2), (JobClient, 1)])
def test_post_times_out_and_is_retried(
    tmp_path: Path,
    client_type: type[JobClient],
    jobs: int,
    expected_output: OutputCheck,
) -> None:
    log_versions()
    secret, runs = new_secret(), []

    def work(job_input: Any) -> Any:
        runs.append(job_input)
        return total(job_input)

    with job_server(
        tmp_path, work, secret, SlowFirstAnswer, require_key=False
    ) as server:
        client = client_type(server.url, tmp_path / "client.db", timeout=TIMEOUT)
        key = client.submit([1, 2, 3])
        assert server.service.drain(WAIT)
        service = server.service
        assert isinstance(service, SlowFirstAnswer)
        answers = list(service.answers)
    urls = {f"/status/{answer.job_id}" for answer in answers}
    assert len(answers) == 2  # the first POST and its retry both arrived
    assert jobs_on_server(server) == jobs
    assert len(runs) == jobs
    assert len(urls) == jobs
    assert _job_id(client, key) == answers[-1].job_id
    assert [answer.replayed for answer in answers] == [False, jobs == 1]
    report = [
        f"{client_type.__name__}: the first answer came after the"
        f" {TIMEOUT:.0f} s timeout",
        f"POSTs the server received: {len(answers)}",
        f"jobs created: {jobs_on_server(server)}, work runs: {len(runs)}",
        f"status URLs handed out: {len(urls)} distinct",
    ]
    name = "keyless" if client_type is KeylessClient else "keyed"
    expected_output(
        f"webhook_design/async_request_reply.retry-{name}", "\n".join(report)
    )


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


def test_callback_down_polling_learns_completion(
    tmp_path: Path, expected_output: OutputCheck
) -> None:
    log_versions()
    secret = new_secret()
    started, release = threading.Event(), threading.Event()
    delays: list[float] = []

    def work(job_input: Any) -> Any:
        started.set()
        assert release.wait(WAIT)
        return total(job_input)

    with job_server(tmp_path, work, secret, callback_attempts=ATTEMPTS) as server:

        class Recorded(JobClient):
            def _sleep(self, seconds: float) -> None:
                delays.append(seconds)
                release.set()  # the job finishes while the client waits
                assert server.service.drain(WAIT)

        client = Recorded(
            server.url, tmp_path / "client.db", callback_url=CLOSED_PORT_URL
        )
        key = client.submit([1, 2, 3])
        assert started.wait(WAIT)
        state = client.wait(key, timeout=WAIT)
        result = client.result(key)
        callbacks = dict(server.service.callbacks)
    assert state == "succeeded"
    assert result == {"sum": 6}
    assert callbacks == {"failed": 1}
    assert client.polls == ["200 running", "303 succeeded"]
    assert delays == [1.0]  # the Retry-After the server sent
    report = [
        f"callbacks to a closed port: {callbacks.get('failed', 0)} not delivered"
        f" ({ATTEMPTS} attempts)",
        f"polls: {', then '.join(client.polls)}",
        f"waited between polls: {delays[0]:.0f} s (Retry-After)",
        f"state: {state}, result: {json.dumps(result)}",
    ]
    expected_output("webhook_design/async_request_reply.poll", "\n".join(report))


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


def test_http_exchange(tmp_path: Path, expected_output: OutputCheck) -> None:
    log_versions()
    gates = {1: threading.Event(), 2: threading.Event()}
    started = {1: threading.Event(), 2: threading.Event()}
    lines: list[str] = []

    def work(job_input: Any) -> Any:
        started[job_input[0]].set()
        assert gates[job_input[0]].wait(WAIT)
        return total(job_input)

    with job_server(tmp_path, work, new_secret()) as server:
        names: dict[str, str] = {}

        def show(label: str, answer: Response) -> Response:
            text = f"{label:<34} -> {answer.status}"
            for header in ("location", "retry-after"):
                if header in answer.headers:
                    value = answer.headers[header]
                    for job_id, name in names.items():
                        value = value.replace(job_id, name)
                    text += f"  {header.title()}: {value}"
            body = answer.json()
            if answer.status != 202 and "state" in body:
                text += f"  state={body['state']}"
            if "sum" in body:
                text += f"  {json.dumps(body)}"
            lines.append(text)
            return answer

        def post(key: str, body: bytes) -> Response:
            headers = {"Idempotency-Key": f'"{key}"'}
            return request("POST", f"{server.url}/jobs", body=body, headers=headers)

        first = post("k-1", b'{"input":[1,2,3]}')
        names[first.json()["job_id"]] = "{A}"
        show("POST /jobs  key k-1", first)
        show("POST /jobs  key k-1 again", post("k-1", b'{"input":[1,2,3]}'))
        show("POST /jobs  key k-1, other body", post("k-1", b'{"input":[4]}'))
        status_a = f"{server.url}/status/{first.json()['job_id']}"
        assert started[1].wait(WAIT)
        show("GET  /status/{A}  (running)", request("GET", status_a))
        gates[1].set()
        assert server.service.drain(WAIT)
        done = show("GET  /status/{A}  (done)", request("GET", status_a))
        show("GET  /results/{A}", request("GET", server.url + done.headers["location"]))
        show("DELETE /status/{A}  (done)", request("DELETE", status_a))

        second = post("k-2", b'{"input":[2,5]}')
        names[second.json()["job_id"]] = "{B}"
        show("POST /jobs  key k-2", second)
        status_b = f"{server.url}/status/{second.json()['job_id']}"
        assert started[2].wait(WAIT)
        show("DELETE /status/{B}  (running)", request("DELETE", status_b))
        gates[2].set()  # the work returns; its result is discarded
        assert server.service.drain(WAIT)
        show("GET  /status/{B}  (after the work)", request("GET", status_b))
        results_b = f"{server.url}/results/{second.json()['job_id']}"
        show("GET  /results/{B}", request("GET", results_b))
    statuses = [int(line.split("-> ")[1][:3]) for line in lines]
    assert statuses == [202, 202, 422, 200, 303, 200, 409, 202, 200, 200, 404]
    assert "state=cancelled" in lines[-2]
    expected_output("webhook_design/async_request_reply.exchange", "\n".join(lines))


# --------------------------------------------------------------------------- #
# Signatures, duplicates, failures, restarts
# --------------------------------------------------------------------------- #


def test_signatures_match_the_reference_library() -> None:
    secret, body = new_secret(), b'{"job_id":"j1","state":"succeeded"}'
    ours = sign_headers(secret, "j1.succeeded", body)
    reference = standardwebhooks.Webhook(secret)
    assert reference.verify(body, ours) == json.loads(body)
    theirs_headers = dict(ours)
    theirs_headers["webhook-signature"] = reference.sign(
        "j1.succeeded", reference_time(ours), body.decode()
    )
    assert verify_headers(secret, theirs_headers, body) == "j1.succeeded"
    with pytest.raises(SignatureError):
        verify_headers(secret, ours, body + b" ")
    with pytest.raises(SignatureError):
        verify_headers(new_secret(), ours, body)
    stale = sign_headers(secret, "j1.succeeded", body, now=1_000_000_000)
    with pytest.raises(SignatureError):
        verify_headers(secret, stale, body)


def reference_time(headers: dict[str, str]) -> datetime:
    return datetime.fromtimestamp(int(headers["webhook-timestamp"]), tz=UTC)


def test_receiver_rejects_forgeries_and_counts_duplicates(tmp_path: Path) -> None:
    secret = new_secret()
    client = JobClient("http://127.0.0.1:9", tmp_path / "client.db")
    with closing(client.connect()) as conn:
        conn.execute("INSERT INTO requests (key, created_at) VALUES ('k', 0)")
    body = b'{"idempotency_key":"k","job_id":"j","state":"succeeded"}'
    with CallbackReceiver(client, secret) as receiver:

        def send(headers: dict[str, str]) -> int:
            return request("POST", receiver.url, body=body, headers=headers).status

        signed = sign_headers(secret, "j.succeeded", body)
        forged = sign_headers(new_secret(), "j.succeeded", body)
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
    return f"{server.url}/status/{_job_id(client, key)}"


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
            during = peer.status(_job_id(client, key))
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
        status = peer.status(_job_id(client, key))
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
