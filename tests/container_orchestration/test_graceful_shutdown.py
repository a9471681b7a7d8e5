"""Tests for snippets/container_orchestration/graceful_shutdown.py.

The service runs as a real process and receives real signals. Requests are held
in flight deterministically: the service's work is a call to a dependency (the
`Gate` below, a TCP server in the test process) that answers only when the test
releases it, so the test sends SIGTERM while exactly N requests are inside
their handlers. The PID 1 tests run the service in a new PID namespace with
``unshare --pid --fork --mount-proc``.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from snippets.support.container_orchestration_service import (
    DOCKERFILE,
    IN_FLIGHT,
    KILL_DEADLINE,
    MODULE,
    PID1_CASES,
    Gate,
    Requests,
    Service,
    acks,
    connect,
    dockerfile_command,
    exit_text,
    run_as_pid1,
    send_jobs,
)
from snippets.support.services import ServiceUnavailable
from tests.conftest import unavailable

CHILDREN = "snippets.support.container_orchestration_children"
DEPLOYMENT = DOCKERFILE.parent / "graceful-shutdown.deployment.yaml"


@pytest.fixture
def gate() -> Iterator[Gate]:
    dependency = Gate()
    yield dependency
    dependency.close()


@pytest.fixture
def services() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for service in started:
        service.kill()


# --------------------------------------------------------------------------- #
# See it break: default SIGTERM, and a drain that outlives the grace period
# --------------------------------------------------------------------------- #


def test_without_a_handler_sigterm_drops_every_request_in_flight(
    gate: Gate, services: list[Service]
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


@pytest.mark.parametrize("variant", ["threaded", "asyncio"])
def test_drain_completes_every_accepted_request_and_refuses_new_ones(
    variant: str, gate: Gate, services: list[Service]
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


def test_sigkill_at_the_deadline_loses_the_requests_that_did_not_drain(
    gate: Gate, services: list[Service]
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


def test_a_drain_budget_below_the_deadline_answers_503_instead(
    gate: Gate, services: list[Service]
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


# --------------------------------------------------------------------------- #
# The worker pool: stop taking jobs, finish the held ones, hand back the rest
# --------------------------------------------------------------------------- #


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
    gate: Gate, services: list[Service]
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
    try:
        code = service.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"running 10 s after SIGTERM; its threads:\n{service.stacks()}")
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


def test_who_receives_sigterm_as_pid_1() -> None:
    if shutil.which("unshare") is None:
        unavailable("unshare (util-linux)", "install util-linux")
    lines = []
    for case in PID1_CASES:
        try:
            app_pid, code = run_as_pid1(case)
        except ServiceUnavailable as error:
            unavailable("PID 1 in a new PID namespace", str(error))
            raise
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
    assert base == "FROM ${BASE}"  # overridable: the tests build on a local base
    (default,) = [line for line in lines if line.startswith("ARG BASE=")]
    image, _, digest = default.removeprefix("ARG BASE=").partition("@")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), default
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


# --------------------------------------------------------------------------- #
# The image, built from the Dockerfile and stopped with docker stop
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def image(docker: str) -> Iterator[str]:
    """The page's Dockerfile built with the legacy builder on the local base."""
    from snippets.support.container_orchestration_image import built_image

    with built_image() as tag:
        yield tag


def test_offline_build_leaves_out_only_the_apt_get_step() -> None:
    from snippets.support.container_orchestration_image import offline_dockerfile

    page = DOCKERFILE.read_text().splitlines()
    built = offline_dockerfile().splitlines()
    left_out = [line for line in page if line not in built]
    assert left_out[0].startswith("RUN apt-get update")
    assert all("apt" in line or "tini" in line for line in left_out)
    assert "FROM ${BASE}" in built and "ARG BASE=python:3.12-slim-bookworm@sha256:" in (
        "\n".join(built)
    )


def test_image_without_a_handler_drops_the_requests_on_docker_stop(image: str) -> None:
    from snippets.container_orchestration.graceful_shutdown.demo import in_container

    outcomes, code, seconds = in_container(image, "--variant", "naive")
    assert outcomes == ["dropped"] * IN_FLIGHT
    assert code == 143  # tini forwarded SIGTERM; Python died of it
    assert seconds < 10


def test_image_with_the_handler_completes_the_requests_on_docker_stop(
    image: str,
) -> None:
    from snippets.container_orchestration.graceful_shutdown.demo import in_container

    outcomes, code, seconds = in_container(image)
    assert outcomes == ["200"] * IN_FLIGHT
    assert code == 0
    assert seconds < 10  # well before docker stop's SIGKILL
