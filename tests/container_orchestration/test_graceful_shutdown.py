"""Tests for snippets/container_orchestration/graceful_shutdown.py.

The service runs as a real process and receives real signals. Requests are held
in flight deterministically: the service's work is a call to a dependency (the
`Gate` below, a TCP server in the test process) that answers only when the test
releases it, so the test sends SIGTERM while exactly N requests are inside
their handlers. The PID 1 tests run the service in a new PID namespace with
``unshare --pid --fork --mount-proc``.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import yaml

from tests.conftest import ROOT, OutputCheck, unavailable

MODULE = "snippets.container_orchestration.graceful_shutdown"
CHILDREN = "snippets.support.container_orchestration_children"
MANIFESTS = ROOT / "snippets" / "container_orchestration" / "manifests"
DOCKERFILE = MANIFESTS / "graceful-shutdown.Dockerfile"
DEPLOYMENT = MANIFESTS / "graceful-shutdown.deployment.yaml"
IN_FLIGHT = 5
KILL_DEADLINE = 3.0  # the test's stand-in for terminationGracePeriodSeconds


# --------------------------------------------------------------------------- #
# Helpers: a dependency that answers on command, the service process, clients
# --------------------------------------------------------------------------- #


class Gate:
    """A TCP dependency: reads one line per connection, answers when released."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = self._listener.getsockname()[:2]
        self._changed = threading.Condition()
        self.arrived: list[str] = []
        self._permits = threading.Semaphore(0)
        self._open = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as lines:
            item = lines.readline().decode().strip()
            with self._changed:
                self.arrived.append(item)
                self._changed.notify_all()
            while not self._open.is_set():
                if self._permits.acquire(timeout=0.1):
                    break
            try:
                conn.sendall(f"done {item}\n".encode())
            except OSError:
                pass  # the service gave up on this call (cancelled or killed)

    def wait_arrivals(self, count: int, timeout: float = 10.0) -> None:
        with self._changed:
            assert self._changed.wait_for(
                lambda: len(self.arrived) >= count, timeout
            ), f"only {len(self.arrived)} of {count} calls reached the dependency"

    def release(self, count: int) -> None:
        for _ in range(count):
            self._permits.release()

    def open(self) -> None:
        self._open.set()

    def close(self) -> None:
        self._open.set()
        self._listener.close()


@pytest.fixture
def gate() -> Iterator[Gate]:
    dependency = Gate()
    yield dependency
    dependency.close()


class Service:
    """The demo service as a child process, with its stdout read line by line."""

    def __init__(self, argv: list[str], stdin: int | None = None) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert self.proc.stdout is not None
        self._reader = threading.Thread(
            target=self._read, args=(self.proc.stdout,), daemon=True
        )
        self._reader.start()

    @classmethod
    def start(cls, *args: str, gate: Gate | None = None) -> Service:
        argv = [sys.executable, "-m", MODULE, *args]
        if gate is not None:
            argv += ["--dependency", f"{gate.address[0]}:{gate.address[1]}"]
        stdin = subprocess.PIPE if args[0] == "pool" else None
        return cls(argv, stdin)

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))

    def expect(self, prefix: str, timeout: float = 10.0) -> str:
        """Wait for the next line that starts with `prefix` and return it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                self.kill()
                raise AssertionError(
                    f"no line starting with {prefix!r}; saw {self.seen}; "
                    f"stderr: {self.stderr()}"
                ) from None
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def rest(self) -> list[str]:
        """Every line so far and to the end of the output (after the exit)."""
        self._reader.join(timeout=5)
        lines = list(self.seen)
        while not self.lines.empty():
            lines.append(self.lines.get_nowait())
        return lines

    def port(self) -> int:
        line = self.expect("listening on port ")
        return int(line.split()[3].rstrip(","))

    def signal(self, sig: signal.Signals) -> float:
        self.proc.send_signal(sig)
        return time.monotonic()

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return "(still running)"
        return self.proc.stderr.read()


@pytest.fixture
def services() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for service in started:
        service.kill()


def get(port: int, path: str, timeout: float = 20.0) -> str:
    """One request; the outcome as a status code or what went wrong."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return str(response.status)
    except ConnectionRefusedError:
        return "refused"
    except (ConnectionResetError, http.client.RemoteDisconnected):
        return "dropped"
    finally:
        conn.close()


class Requests:
    """`count` requests sent at once, each in its own thread."""

    def __init__(self, port: int, count: int) -> None:
        self.outcomes: queue.Queue[str] = queue.Queue()
        for n in range(1, count + 1):
            threading.Thread(
                target=lambda path=f"/r{n}": self.outcomes.put(get(port, path)),
                daemon=True,
            ).start()

    def take(self, count: int, timeout: float = 10.0) -> list[str]:
        return [self.outcomes.get(timeout=timeout) for _ in range(count)]


def connect(port: int) -> str:
    """Whether a new connection is accepted or refused."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return "accepted"
    except ConnectionRefusedError:
        return "refused"


def summary(outcomes: list[str]) -> str:
    counts = Counter(outcomes)
    names = {"200": "completed", "503": "answered 503", "dropped": "dropped"}
    return ", ".join(f"{names.get(k, k)} {counts[k]}" for k in sorted(counts))


def exit_text(code: int) -> str:
    return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit {code}"


# --------------------------------------------------------------------------- #
# See it break: default SIGTERM, and a drain that outlives the grace period
# --------------------------------------------------------------------------- #


def test_without_a_handler_sigterm_drops_every_request_in_flight(
    gate: Gate, services: list[Service], expected_output: OutputCheck
) -> None:
    service = Service.start(
        "serve", "--variant", "naive", "--host", "127.0.0.1", "--port", "0", gate=gate
    )
    services.append(service)
    port = service.port()
    requests = Requests(port, IN_FLIGHT)
    gate.wait_arrivals(IN_FLIGHT)

    service.signal(signal.SIGTERM)
    code = service.wait(timeout=5)
    gate.open()
    outcomes = requests.take(IN_FLIGHT)

    assert code == -signal.SIGTERM
    assert outcomes.count("dropped") == IN_FLIGHT
    assert connect(port) == "refused"
    expected_output(
        "container_orchestration/graceful_shutdown.no_handler",
        f"SIGTERM with {IN_FLIGHT} requests in flight, no handler\n"
        f"requests: {summary(outcomes)}\n"
        f"process: {exit_text(code)}",
    )


@pytest.mark.parametrize("variant", ["threaded", "asyncio"])
def test_drain_completes_every_accepted_request_and_refuses_new_ones(
    variant: str, gate: Gate, services: list[Service], expected_output: OutputCheck
) -> None:
    service = Service.start(
        "serve",
        "--variant",
        variant,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--grace",
        "10",
        gate=gate,
    )
    services.append(service)
    port = service.port()
    requests = Requests(port, IN_FLIGHT)
    gate.wait_arrivals(IN_FLIGHT)

    sent = service.signal(signal.SIGTERM)
    draining = service.expect("SIGTERM: stopped accepting")
    after_sigterm = connect(port)  # intake is closed, the old requests still run
    gate.open()
    outcomes = requests.take(IN_FLIGHT)
    code = service.wait(timeout=KILL_DEADLINE)
    took = time.monotonic() - sent

    assert draining.endswith(f"draining {IN_FLIGHT} in flight")
    assert outcomes == ["200"] * IN_FLIGHT
    assert after_sigterm == "refused"
    assert code == 0
    assert took < KILL_DEADLINE
    assert len(gate.arrived) == IN_FLIGHT  # nothing new reached the dependency
    if variant == "threaded":
        expected_output(
            "container_orchestration/graceful_shutdown.drained",
            f"SIGTERM with {IN_FLIGHT} requests in flight, handler installed\n"
            f"new connection after SIGTERM: {after_sigterm}\n"
            f"requests: {summary(outcomes)}\n"
            f"process: {exit_text(code)}, before the {KILL_DEADLINE:g} s deadline",
        )


def test_sigkill_at_the_deadline_loses_the_requests_that_did_not_drain(
    gate: Gate, services: list[Service], expected_output: OutputCheck
) -> None:
    # The service would wait 60 s; the "kubelet" kills it after KILL_DEADLINE.
    service = Service.start(
        "serve", "--host", "127.0.0.1", "--port", "0", "--grace", "60", gate=gate
    )
    services.append(service)
    requests = Requests(service.port(), IN_FLIGHT)
    gate.wait_arrivals(IN_FLIGHT)

    sent = service.signal(signal.SIGTERM)
    service.expect("SIGTERM: stopped accepting")
    gate.release(3)  # three requests can finish, two cannot
    finished = requests.take(3)
    try:
        code = service.wait(timeout=max(sent + KILL_DEADLINE - time.monotonic(), 0))
    except subprocess.TimeoutExpired:
        service.proc.send_signal(signal.SIGKILL)  # the grace period is over
        code = service.wait(timeout=5)
    gate.open()
    outcomes = finished + requests.take(IN_FLIGHT - 3)

    assert finished == ["200"] * 3
    assert code == -signal.SIGKILL
    assert outcomes.count("dropped") == IN_FLIGHT - 3
    expected_output(
        "container_orchestration/graceful_shutdown.killed",
        f"drain budget 60 s, SIGKILL at {KILL_DEADLINE:g} s, "
        f"{IN_FLIGHT} in flight, 3 can finish\n"
        f"requests: {summary(outcomes)}\n"
        f"process: {exit_text(code)}",
    )


def test_a_drain_budget_below_the_deadline_answers_503_instead(
    gate: Gate, services: list[Service], expected_output: OutputCheck
) -> None:
    service = Service.start(
        "serve",
        "--variant",
        "asyncio",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--grace",
        "1",
        "--dependency-timeout",  # longer than the budget: the deadline decides
        "30",
        gate=gate,
    )
    services.append(service)
    requests = Requests(service.port(), IN_FLIGHT)
    gate.wait_arrivals(IN_FLIGHT)

    sent = service.signal(signal.SIGTERM)
    service.expect("SIGTERM: stopped accepting")
    gate.release(3)
    code = service.wait(timeout=KILL_DEADLINE)
    took = time.monotonic() - sent
    outcomes = requests.take(IN_FLIGHT)

    assert code == 1
    assert took < KILL_DEADLINE
    assert sorted(outcomes) == ["200"] * 3 + ["503"] * (IN_FLIGHT - 3)
    assert "deadline: answering 503 to 2 in flight" in service.rest()
    expected_output(
        "container_orchestration/graceful_shutdown.budget",
        f"drain budget 1 s, SIGKILL at {KILL_DEADLINE:g} s, "
        f"{IN_FLIGHT} in flight, 3 can finish\n"
        f"requests: {summary(outcomes)}\n"
        f"process: {exit_text(code)}, before the deadline",
    )


# --------------------------------------------------------------------------- #
# The worker pool: stop taking jobs, finish the held ones, hand back the rest
# --------------------------------------------------------------------------- #


def send_jobs(service: Service, *jobs: str) -> None:
    assert service.proc.stdin is not None
    service.proc.stdin.write("".join(f"{job}\n" for job in jobs))
    service.proc.stdin.flush()


def acks(lines: list[str], kind: str) -> list[str]:
    return sorted(line.split()[1] for line in lines if line.startswith(f"{kind} "))


def test_pool_finishes_held_jobs_and_takes_none_after_sigterm(
    gate: Gate, services: list[Service]
) -> None:
    service = Service.start(
        "pool", "--workers", "3", "--prefetch", "2", "--grace", "10", gate=gate
    )
    services.append(service)
    service.expect("taking jobs")
    send_jobs(service, "j1", "j2", "j3", "j4", "j5")
    service.expect("took j5")
    gate.wait_arrivals(3)  # three running, two waiting in the buffer

    service.signal(signal.SIGTERM)
    draining = service.expect("SIGTERM: stopped taking jobs")
    send_jobs(service, "j6", "j7")  # arrive after intake stopped
    gate.open()
    code = service.wait(timeout=KILL_DEADLINE)
    lines = service.rest()

    assert draining.endswith("draining 5 held")
    assert code == 0
    assert acks(lines, "ack") == ["j1", "j2", "j3", "j4", "j5"]
    assert acks(lines, "nack") == []
    assert not any(job in gate.arrived for job in ("j6", "j7"))


def test_pool_hands_back_what_it_cannot_finish_within_its_budget(
    gate: Gate, services: list[Service], expected_output: OutputCheck
) -> None:
    service = Service.start(
        "pool",
        "--workers",
        "2",
        "--prefetch",
        "3",
        "--grace",
        "1",
        "--dependency-timeout",  # longer than the budget: the deadline decides
        "30",
        gate=gate,
    )
    services.append(service)
    service.expect("taking jobs")
    send_jobs(service, "j1", "j2", "j3", "j4", "j5")
    service.expect("took j5")
    gate.wait_arrivals(2)

    sent = service.signal(signal.SIGTERM)
    service.expect("SIGTERM: stopped taking jobs")
    gate.release(2)  # the two running jobs finish; the next two start and hang
    code = service.wait(timeout=KILL_DEADLINE)
    took = time.monotonic() - sent
    lines = service.rest()
    acked, nacked = acks(lines, "ack"), acks(lines, "nack")
    running = [job for job in nacked if job in gate.arrived]

    assert code == 1
    assert took < KILL_DEADLINE
    assert len(acked) == 2
    assert len(nacked) == 3
    assert sorted(acked + nacked) == ["j1", "j2", "j3", "j4", "j5"]
    assert len(running) == 2
    expected_output(
        "container_orchestration/graceful_shutdown.pool",
        "2 workers, prefetch 3, drain budget 1 s; 5 jobs held, 2 can finish\n"
        f"acked {len(acked)}, handed back {len(nacked)} "
        f"({len(running)} running, {len(nacked) - len(running)} not started)\n"
        f"process: {exit_text(code)}, before the {KILL_DEADLINE:g} s deadline",
    )


def test_pool_acks_or_hands_back_a_job_fetched_while_it_was_stopping(
    services: list[Service],
) -> None:
    """SIGTERM arrives while the intake thread is inside a slow fetch.

    The fetch returns a job 2 s later, after any short wait for the intake
    thread has given up. That job must still be acked or handed back.
    """
    argv = [sys.executable, "-m", CHILDREN, "slow-intake", "5", "2"]
    service = Service(argv, subprocess.PIPE)
    services.append(service)
    service.expect("fetching late-job")
    service.signal(signal.SIGTERM)
    code = service.wait(timeout=10)
    lines = service.rest()
    settled = acks(lines, "ack") + acks(lines, "nack")

    assert settled.count("late-job") == 1, lines
    assert code == (0 if "ack late-job" in lines else 1)


def test_a_dependency_that_never_answers_times_out_within_the_drain_budget(
    services: list[Service],
) -> None:
    """The dependency call's timeout comes from the drain budget, not a constant."""
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    try:
        host, port = silent.getsockname()[:2]
        service = Service.start(
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--grace",
            "2",
            "--dependency",
            f"{host}:{port}",
        )
        services.append(service)
        requests = Requests(service.port(), 1)
        held, _ = silent.accept()  # the request is inside its dependency call
        sent = service.signal(signal.SIGTERM)
        outcome = requests.take(1, timeout=10)
        code = service.wait(timeout=10)
        took = time.monotonic() - sent
        held.close()
    finally:
        silent.close()

    assert outcome == ["502"]  # the call timed out and the client got an answer
    assert code == 0  # drained: nothing was abandoned at the deadline
    assert took < 2 + 0.5


# --------------------------------------------------------------------------- #
# PID 1 in a real PID namespace: who receives SIGTERM
# --------------------------------------------------------------------------- #


def dockerfile_command() -> tuple[list[str], list[str]]:
    """ENTRYPOINT and CMD of the Dockerfile, both in exec form (JSON arrays)."""
    argv: dict[str, list[str]] = {}
    for line in DOCKERFILE.read_text().splitlines():
        keyword, _, rest = line.partition(" ")
        if keyword in ("ENTRYPOINT", "CMD"):
            argv[keyword] = json.loads(rest)
    return argv["ENTRYPOINT"], argv["CMD"]


def children(pid: int) -> list[int]:
    """Process ids whose parent is `pid`, as this (the parent) namespace sees them."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


PID1_CASES = (
    "exec form, no handler",
    "shell form, handler",
    "shell form with exec, handler",
    "exec form, handler",
    "tini in front, handler",
)


def pid1_command(case: str) -> list[str]:
    """What the container runtime would start, run on this machine's Python.

    The last case is the image's own ENTRYPOINT and CMD; the others drop its
    init to show what Python alone, or a shell, does as PID 1.
    """
    entrypoint, cmd = dockerfile_command()
    if not case.startswith("tini"):
        entrypoint = entrypoint[entrypoint.index("python") :]
    if case == "exec form, no handler":
        cmd = [*cmd, "--variant", "naive"]
    tini = shutil.which("tini")
    if case.startswith("tini") and tini is None:
        unavailable("tini", "install it: apt-get install tini")
    local = {
        "python": sys.executable,
        "tini": str(tini),
        "0.0.0.0": "127.0.0.1",
        "8080": "0",
    }
    command = [local.get(arg, arg) for arg in entrypoint + cmd]
    if case.startswith("shell form"):  # what `CMD python -m ...` turns into
        prefix = "exec " if "exec" in case else ""
        return ["/bin/sh", "-c", prefix + shlex.join(command)]
    return command


def run_as_pid1(case: str) -> tuple[int, int | None]:
    """Start `case` in a new PID namespace, SIGTERM its PID 1; (app pid, status)."""
    argv = ["unshare", "--pid", "--fork", "--mount-proc", *pid1_command(case)]
    service = Service(argv)
    try:
        try:
            line = service.expect("listening on port ", timeout=10)
        except AssertionError:
            stderr = service.stderr()
            if "unshare" in stderr:
                unavailable("a new PID namespace", f"run the tests as root ({stderr})")
            raise
        app_pid = int(line.rsplit(" ", 1)[1])  # its PID inside the namespace
        (init,) = children(service.proc.pid)  # the namespace's PID 1, seen from here
        os.kill(init, signal.SIGTERM)  # what the container runtime sends
        try:
            return app_pid, service.wait(timeout=1.5)
        except subprocess.TimeoutExpired:
            os.kill(
                init, signal.SIGKILL
            )  # forcibly delivered from the parent namespace
            service.wait(timeout=5)
            return app_pid, None
    finally:
        service.kill()


def test_who_receives_sigterm_as_pid_1(expected_output: OutputCheck) -> None:
    if shutil.which("unshare") is None:
        unavailable("unshare (util-linux)", "install util-linux")
    lines = []
    for case in PID1_CASES:
        app_pid, code = run_as_pid1(case)
        shell_in_front = case.startswith("shell form, ")
        init_in_front = case.startswith("tini")
        handled = case.endswith(", handler") and not shell_in_front
        assert (app_pid == 1) is not (shell_in_front or init_in_front), case
        assert (code == 0) is handled, case
        outcome = (
            f"drained, {exit_text(code)}"
            if code is not None
            else "still serving 1.5 s after SIGTERM; SIGKILL"
        )
        lines.append(f"{case + ':':<31} app is PID {app_pid}, {outcome}")
    expected_output("container_orchestration/graceful_shutdown.pid1", "\n".join(lines))


# --------------------------------------------------------------------------- #
# The manifests the page shows
# --------------------------------------------------------------------------- #


def tool(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def test_dockerfile_passes_hadolint_and_uses_the_exec_form() -> None:
    result = subprocess.run(
        [tool("hadolint"), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""
    text = DOCKERFILE.read_text()
    assert "STOPSIGNAL SIGTERM" in text
    assert dockerfile_command()[0] == ["tini", "--", "python", "-m", MODULE]


@pytest.mark.parametrize("version", ["1.30.0", "1.34.0"])
def test_deployment_validates_against_kubernetes(version: str) -> None:
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "-k", version, str(DEPLOYMENT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_deployment_budget_fits_the_grace_period() -> None:
    deployment = manifest_documents(DEPLOYMENT)["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = float(env["SHUTDOWN_GRACE_SECONDS"])
    grace_period = pod["terminationGracePeriodSeconds"]

    assert (pre_stop, drain, grace_period) == (5, 20, 30)
    assert pre_stop + drain < grace_period  # a margin is left before SIGKILL
    assert "command" not in container  # the image's exec-form ENTRYPOINT runs
    assert "args" not in container


def test_dockerfile_pins_its_base_runs_an_init_and_layers_dependencies_first() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    (base,) = [line for line in lines if line.startswith("FROM ")]
    image, _, digest = base.removeprefix("FROM ").partition("@")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), base
    assert ":" in image  # the tag stays for readers; the digest decides
    env = [line for line in lines if line.startswith("ENV ")]
    assert any("PYTHONUNBUFFERED=1" in line.split() for line in env)  # logs at once
    entrypoint, _ = dockerfile_command()
    assert entrypoint[:2] == ["tini", "--"]  # an init reaps and forwards
    copies = [line for line in lines if line.startswith("COPY ")]
    assert "requirements" in copies[0] and "snippets/" in copies[-1]


def manifest_documents(path: Path) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(path.read_text())}


def test_deployment_has_a_disruption_budget_and_a_surge_first_rollout() -> None:
    documents = manifest_documents(DEPLOYMENT)
    deployment, budget = documents["Deployment"], documents["PodDisruptionBudget"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    rolling = deployment["spec"]["strategy"]["rollingUpdate"]

    assert budget["apiVersion"] == "policy/v1"
    assert budget["spec"]["selector"]["matchLabels"] == labels
    assert budget["spec"]["maxUnavailable"] == 1
    assert deployment["spec"]["replicas"] >= 2  # a budget of one replica blocks drains
    assert (rolling["maxUnavailable"], rolling["maxSurge"]) == (0, 1)
