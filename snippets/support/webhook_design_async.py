"""Harness for the async request-reply demo and tests.

A job server on a temporary SQLite file, a server that answers its first POST
late, a client held between the 202 and its record, and the scenarios the page
shows, each returning what happened so that the tests can assert it and the
demo can print it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snippets.webhook_design.async_request_reply import (
    Accepted,
    CallbackReceiver,
    JobClient,
    JobServer,
    JobService,
    Response,
    Work,
    request,
)
from snippets.webhook_design.verify_then_dedupe import new_secret

__all__ = [
    "ATTEMPTS",
    "CLOSED_PORT_URL",
    "TIMEOUT",
    "WAIT",
    "EarlyCallback",
    "Exchange",
    "Polled",
    "Retried",
    "SlowFirstAnswer",
    "early_callback",
    "exchange",
    "job_id_of",
    "job_server",
    "jobs_on_server",
    "polling",
    "retried_post",
    "total",
]

WAIT = 10.0  # seconds; every wait here is bounded by it
CLOSED_PORT_URL = "http://127.0.0.1:1/callbacks"  # nothing listens on port 1
ATTEMPTS = 3  # callback deliveries the server tries
TIMEOUT = 1.0  # the client's timeout per POST in the retry scenario


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
    """A `JobServer` on ``directory/server.db``, closed afterwards."""
    service = service_type(directory / "server.db", work, secret=secret, **options)
    with JobServer(service) as server:
        yield server


def jobs_on_server(server: JobServer) -> int:
    with closing(server.service.connect()) as conn:
        (count,) = conn.execute("SELECT count(*) FROM jobs").fetchone()
    return int(count)


def job_id_of(client: JobClient, key: str) -> str:
    """The job id the client recorded for its request ``key``."""
    with closing(client.connect()) as conn:
        row = conn.execute("SELECT job_id FROM requests WHERE key = ?", (key,))
        found = row.fetchone()
    assert found is not None
    return str(found[0])


# --------------------------------------------------------------------------- #
# (a) The callback arrives before the client has stored the 202
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class EarlyCallback:
    outcome: Counter[str]  # what the client did with the callback
    client_state: str | None
    server_state: str | None
    sent: Counter[str]  # what the server's relay recorded


def early_callback(directory: Path, client_type: type[JobClient]) -> EarlyCallback:
    """The client is held between the 202 and its record until the callback
    has been handled."""
    secret = new_secret()
    handled = threading.Event()

    class Held(client_type):  # type: ignore[valid-type,misc]
        def on_callback(self, event: Any) -> str:
            try:
                return str(super().on_callback(event))
            finally:
                handled.set()

        def _record_accepted(self, key: str, job_id: str, status_url: str) -> None:
            assert handled.wait(WAIT), "the callback never came"
            super()._record_accepted(key, job_id, status_url)

    with job_server(directory, total, secret) as server:
        client = Held(server.url, directory / "client.db")
        with CallbackReceiver(client, secret) as receiver:
            client.callback_url = receiver.url
            key = client.submit([1, 2, 3])
            assert server.service.drain(WAIT)
        status = server.service.status(job_id_of(client, key))
        sent = Counter(server.service.callbacks)
    return EarlyCallback(
        Counter(client.callbacks),
        client.state(key),
        None if status is None else status.state,
        sent,
    )


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


@dataclass(frozen=True)
class Retried:
    answers: list[Accepted]  # what the server answered to each POST
    jobs: int
    runs: int
    client_job: str  # the job id the client recorded


def retried_post(directory: Path, client_type: type[JobClient]) -> Retried:
    """The first answer comes after the client's timeout; it sends again."""
    runs: list[Any] = []

    def work(job_input: Any) -> Any:
        runs.append(job_input)
        return total(job_input)

    options: dict[str, Any] = {"require_key": False}
    with job_server(
        directory, work, new_secret(), SlowFirstAnswer, **options
    ) as server:
        client = client_type(server.url, directory / "client.db", timeout=TIMEOUT)
        key = client.submit([1, 2, 3])
        assert server.service.drain(WAIT)
        service = server.service
        assert isinstance(service, SlowFirstAnswer)
        jobs = jobs_on_server(server)
        return Retried(list(service.answers), jobs, len(runs), job_id_of(client, key))


# --------------------------------------------------------------------------- #
# (c) The callback endpoint is down: polling still learns the outcome
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Polled:
    state: str
    result: Any
    sent: Counter[str]
    polls: list[str]
    delays: list[float]


def polling(directory: Path) -> Polled:
    """Callbacks go to a closed port; the job finishes while the client waits
    between two polls."""
    started, release = threading.Event(), threading.Event()
    delays: list[float] = []

    def work(job_input: Any) -> Any:
        started.set()
        assert release.wait(WAIT)
        return total(job_input)

    secret = new_secret()
    with job_server(directory, work, secret, callback_attempts=ATTEMPTS) as server:

        class Recorded(JobClient):
            def _sleep(self, seconds: float) -> None:
                delays.append(seconds)
                release.set()  # the job finishes while the client waits
                assert server.service.drain(WAIT)

        client = Recorded(
            server.url, directory / "client.db", callback_url=CLOSED_PORT_URL
        )
        key = client.submit([1, 2, 3])
        assert started.wait(WAIT)
        state = client.wait(key, timeout=WAIT)
        result = client.result(key)
        sent = Counter(server.service.callbacks)
    return Polled(state, result, sent, list(client.polls), delays)


# --------------------------------------------------------------------------- #
# The HTTP exchange, status codes and all
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Exchange:
    steps: list[tuple[str, Response]]  # (what was sent, the answer)
    names: dict[str, str]  # job id -> {A} or {B}


def exchange(directory: Path) -> Exchange:
    """Two jobs through every status code the server has."""
    gates = {1: threading.Event(), 2: threading.Event()}
    started = {1: threading.Event(), 2: threading.Event()}
    steps: list[tuple[str, Response]] = []
    names: dict[str, str] = {}

    def work(job_input: Any) -> Any:
        started[job_input[0]].set()
        assert gates[job_input[0]].wait(WAIT)
        return total(job_input)

    with job_server(directory, work, new_secret()) as server:

        def step(label: str, answer: Response) -> Response:
            steps.append((label, answer))
            return answer

        def post(key: str, body: bytes) -> Response:
            headers = {"Idempotency-Key": f'"{key}"'}
            return request("POST", f"{server.url}/jobs", body=body, headers=headers)

        first = post("k-1", b'{"input":[1,2,3]}')
        names[first.json()["job_id"]] = "{A}"
        step("POST /jobs  key k-1", first)
        step("POST /jobs  key k-1 again", post("k-1", b'{"input":[1,2,3]}'))
        step("POST /jobs  key k-1, other body", post("k-1", b'{"input":[4]}'))
        status_a = f"{server.url}/status/{first.json()['job_id']}"
        assert started[1].wait(WAIT)
        step("GET  /status/{A}  (running)", request("GET", status_a))
        gates[1].set()
        assert server.service.drain(WAIT)
        done = step("GET  /status/{A}  (done)", request("GET", status_a))
        step("GET  /results/{A}", request("GET", server.url + done.headers["location"]))
        step("DELETE /status/{A}  (done)", request("DELETE", status_a))

        second = post("k-2", b'{"input":[2,5]}')
        names[second.json()["job_id"]] = "{B}"
        step("POST /jobs  key k-2", second)
        status_b = f"{server.url}/status/{second.json()['job_id']}"
        assert started[2].wait(WAIT)
        step("DELETE /status/{B}  (running)", request("DELETE", status_b))
        gates[2].set()  # the work returns; its result is discarded
        assert server.service.drain(WAIT)
        step("GET  /status/{B}  (after the work)", request("GET", status_b))
        results_b = f"{server.url}/results/{second.json()['job_id']}"
        step("GET  /results/{B}", request("GET", results_b))
    return Exchange(steps, names)
