"""The cases the graceful-shutdown page shows.

    python -m snippets.container_orchestration.graceful_shutdown.demo CASE

The service runs as a real process and receives real signals; its work is a
call to a `Gate` dependency that answers only when released, so SIGTERM
arrives while exactly five requests are in flight.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from snippets.support.cases import run_cases
from snippets.support.container_orchestration_image import (
    built_image,
    container_service,
)
from snippets.support.container_orchestration_service import (
    DOCKERFILE,
    IN_FLIGHT,
    KILL_DEADLINE,
    PID1_CASES,
    Gate,
    Requests,
    Service,
    acks,
    connect,
    exit_text,
    run_as_pid1,
    send_jobs,
    summary,
)
from snippets.support.docker_engine import docker, docker_bin

LOCAL = ("--host", "127.0.0.1", "--port", "0")


def no_handler() -> list[str]:
    gate = Gate()
    service = Service.start("serve", "--variant", "naive", *LOCAL, gate=gate)
    try:
        requests = Requests(service.port(), IN_FLIGHT)
        gate.wait_arrivals(IN_FLIGHT)
        service.signal(signal.SIGTERM)
        code = service.wait(timeout=10)
        gate.open()
        outcomes = requests.take(IN_FLIGHT)
    finally:
        service.kill()
        gate.close()
    return [
        f"SIGTERM with {IN_FLIGHT} requests in flight, no handler",
        f"requests: {summary(outcomes)}",
        f"process: {exit_text(code)}",
    ]


def drained() -> list[str]:
    gate = Gate()
    service = Service.start("serve", *LOCAL, "--grace", "10", gate=gate)
    try:
        port = service.port()
        requests = Requests(port, IN_FLIGHT)
        gate.wait_arrivals(IN_FLIGHT)
        sent = service.signal(signal.SIGTERM)
        service.expect("SIGTERM: stopped accepting")
        after_sigterm = connect(port)  # intake is closed, the old requests run
        gate.open()
        outcomes = requests.take(IN_FLIGHT)
        code = service.wait(timeout=30)
        in_time = time.monotonic() - sent < KILL_DEADLINE
    finally:
        service.kill()
        gate.close()
    deadline = "before" if in_time else "after"
    return [
        f"SIGTERM with {IN_FLIGHT} requests in flight, handler installed",
        f"new connection after SIGTERM: {after_sigterm}",
        f"requests: {summary(outcomes)}",
        f"process: {exit_text(code)}, {deadline} the {KILL_DEADLINE:g} s deadline",
    ]


def killed() -> list[str]:
    gate = Gate()  # the service would wait 60 s; SIGKILL comes at KILL_DEADLINE
    service = Service.start("serve", *LOCAL, "--grace", "60", gate=gate)
    try:
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
    finally:
        service.kill()
        gate.close()
    return [
        f"drain budget 60 s, SIGKILL at {KILL_DEADLINE:g} s, "
        f"{IN_FLIGHT} in flight, 3 can finish",
        f"requests: {summary(outcomes)}",
        f"process: {exit_text(code)}",
    ]


def budget() -> list[str]:
    gate = Gate()  # a dependency timeout longer than the budget: the deadline decides
    service = Service.start(
        "serve", "--variant", "asyncio", *LOCAL, "--grace", "1",
        "--dependency-timeout", "30", gate=gate,
    )  # fmt: skip
    try:
        requests = Requests(service.port(), IN_FLIGHT)
        gate.wait_arrivals(IN_FLIGHT)
        sent = service.signal(signal.SIGTERM)
        service.expect("SIGTERM: stopped accepting")
        gate.release(3)
        code = service.wait(timeout=30)
        in_time = time.monotonic() - sent < KILL_DEADLINE
        outcomes = requests.take(IN_FLIGHT)
    finally:
        service.kill()
        gate.close()
    return [
        f"drain budget 1 s, SIGKILL at {KILL_DEADLINE:g} s, "
        f"{IN_FLIGHT} in flight, 3 can finish",
        f"requests: {summary(outcomes)}",
        f"process: {exit_text(code)}, {'before' if in_time else 'after'} the deadline",
    ]


def pool() -> list[str]:
    gate = Gate()
    service = Service.start(
        "pool", "--workers", "2", "--prefetch", "3", "--grace", "1",
        "--dependency-timeout", "30", gate=gate,
    )  # fmt: skip
    try:
        service.expect("taking jobs")
        send_jobs(service, "j1", "j2", "j3", "j4", "j5")
        service.expect("took j5")
        gate.wait_arrivals(2)
        sent = service.signal(signal.SIGTERM)
        service.expect("SIGTERM: stopped taking jobs")
        gate.release(2)  # the two running jobs finish; the next two start and hang
        code = service.wait(timeout=30)
        in_time = time.monotonic() - sent < KILL_DEADLINE
        lines = service.rest()
    finally:
        service.kill()
        gate.close()
    acked, nacked = acks(lines, "ack"), acks(lines, "nack")
    running = [job for job in nacked if job in gate.arrived]
    deadline = "before" if in_time else "after"
    return [
        "2 workers, prefetch 3, drain budget 1 s; 5 jobs held, 2 can finish",
        f"acked {len(acked)}, handed back {len(nacked)} "
        f"({len(running)} running, {len(nacked) - len(running)} not started)",
        f"process: {exit_text(code)}, {deadline} the {KILL_DEADLINE:g} s deadline",
    ]


def pid1() -> list[str]:
    lines = []
    for case in PID1_CASES:
        app_pid, code = run_as_pid1(case)
        outcome = (
            f"drained, {exit_text(code)}"
            if code is not None
            else "still serving 1.5 s after SIGTERM; SIGKILL"
        )
        lines.append(f"{case + ':':<31} app is PID {app_pid}, {outcome}")
    return lines


def in_container(image: str, *args: str) -> tuple[list[str], int, float]:
    """`docker stop` with IN_FLIGHT requests in flight: outcomes, exit, seconds."""
    gate = Gate()
    service, name = container_service(image, gate, *args)
    try:
        requests = Requests(service.port(), IN_FLIGHT)
        gate.wait_arrivals(IN_FLIGHT)
        started = time.monotonic()
        stop = subprocess.Popen(
            [docker_bin(), "stop", "-t", "10", name], stdout=subprocess.DEVNULL
        )
        if args:  # no handler: see whether the process outlives the signal
            code = service.wait(timeout=30)
            gate.open()
        else:  # the handler closes the port first; then let the five finish
            service.expect("SIGTERM: stopped accepting")
            gate.open()
            code = service.wait(timeout=30)
        outcomes = requests.take(IN_FLIGHT)
        stop.wait(timeout=30)
        seconds = time.monotonic() - started
    finally:
        service.kill()
        gate.close()
        docker("rm", "-f", name, check=False)
    return outcomes, code, seconds


def container() -> list[str]:
    lines = [f"DOCKER_BUILDKIT=0 docker build -f {DOCKERFILE.name} (local base)"]
    with built_image() as image:
        for label, args in (("no handler", ("--variant", "naive")), ("handler", ())):
            outcomes, code, seconds = in_container(image, *args)
            took = "under 5 s" if seconds < 5 else "10 s or more"
            lines.append(
                f"docker stop, {IN_FLIGHT} in flight, {label + ':':<12}"
                f"{summary(outcomes)}; exit {code}, {took}"
            )
    return lines


if __name__ == "__main__":
    sys.exit(
        run_cases(
            {
                "budget": budget,
                "container": container,
                "drained": drained,
                "killed": killed,
                "no_handler": no_handler,
                "pid1": pid1,
                "pool": pool,
            }
        )
    )
