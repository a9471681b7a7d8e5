"""Celery 5.7 workers under a kubelet's rules: liveness probes and shutdown.

Real ``celery worker`` processes (the Celery page's harness) on a real
RabbitMQ. A liveness file touched by a thread in the worker's main process goes
stale when that process is stopped (SIGSTOP) and stays fresh when the broker
is unreachable; ``celery inspect ping`` fails for every worker when the broker
is unreachable. The broker outage is a loopback proxy that closes, so RabbitMQ
keeps serving everyone else. SIGTERM is a warm shutdown that waits for the
running task; a task still running when the grace period ends is SIGKILLed and
lost under the default early ack, requeued under ``task_acks_late``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import celery  # type: ignore[import-untyped]
import pytest
import yaml
from celery import signals
from celery.app.defaults import DEFAULTS  # type: ignore[import-untyped]

from snippets.container_orchestration.celery_workers_on_kubernetes import (
    file_is_fresh,
    main,
)
from snippets.container_orchestration.celery_workers_on_kubernetes.demo import (
    CUTOFF_RUNS,
    cut_off,
    probe_outcomes,
    warm_shutdown,
)
from snippets.support.message_queues_celery import Lab
from tests.conftest import ROOT, RabbitMQ, Redis

MANIFEST = ROOT / "snippets/container_orchestration/manifests"
DEPLOYMENT = MANIFEST / "celery-worker.deployment.yaml"

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def lab(rabbitmq: RabbitMQ, redis: Redis) -> Iterator[Lab]:
    yield Lab(rabbitmq.url, redis, rabbitmq)


def test_the_version_and_settings_the_page_names() -> None:
    assert celery.__version__ == "5.7.0"
    assert DEFAULTS["task_acks_late"] is False
    assert DEFAULTS["worker_soft_shutdown_timeout"] == 0.0
    assert DEFAULTS["worker_enable_soft_shutdown_on_idle"] is False
    # heartbeat_sent exists, but fires only with event heartbeats on the broker.
    assert isinstance(signals.heartbeat_sent, signals.Signal)
    assert isinstance(signals.worker_ready, signals.Signal)


# --------------------------------------------------------------------------- #
# The probe command
# --------------------------------------------------------------------------- #


def test_file_probe_reads_the_age(tmp_path: Path) -> None:
    path = tmp_path / "alive"
    assert not file_is_fresh(path, 30)  # not started yet
    assert main([str(path), "30"]) == 1
    path.touch()
    assert file_is_fresh(path, 30)
    assert main([str(path), "30"]) == 0
    old = time.time() - 60
    os.utime(path, (old, old))
    assert not file_is_fresh(path, 30)
    assert main([str(path), "30"]) == 1


def test_the_check_runs_without_celery(tmp_path: Path) -> None:
    # As the manifest runs it: a script; it must not import Celery.
    check = ROOT / "snippets/container_orchestration/celery_workers_on_kubernetes"
    code = (
        "import runpy, sys; sys.argv = ['check', sys.argv[1], '30'];"
        f"runpy.run_path({str(check / 'check.py')!r}, run_name='probe');"
        "assert 'celery' not in sys.modules"
    )
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "x")])
    assert result.returncode == 0


# --------------------------------------------------------------------------- #
# Liveness: file probe against inspect ping
# --------------------------------------------------------------------------- #


def test_file_probe_catches_a_hung_worker_and_ignores_a_broker_outage(
    lab: Lab, tmp_path: Path
) -> None:
    outcomes = probe_outcomes(lab, tmp_path)
    assert outcomes == {
        "all healthy": ("2 of 2 pass", "2 of 2 pass"),
        "a stopped (SIGSTOP)": ("1 of 2 pass", "1 of 2 pass"),
        # The broker is down: ping says every worker is dead, the file does not.
        "broker unreachable": ("2 of 2 pass", "0 of 2 pass"),
        # A file touched from the event loop goes stale with the broker.
        "event-loop file": ("0 of 2 pass", "2 of 2 running"),
    }  # fmt: skip


def test_inspect_ping_without_a_reply(lab: Lab, error_record: Any) -> None:
    # What the probe prints for a worker that does not answer in time.
    args = [sys.executable, "-m", "celery", "-b", lab.broker, "inspect", "ping"]
    result = subprocess.run(
        [*args, "-d", "nobody@cp", "-t", "1"], capture_output=True, text=True,
        timeout=30,
    )  # fmt: skip
    assert result.returncode != 0
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("Error:")]
    error_record(line, id="no-nodes-replied", component="celery",
                 version=celery.__version__, section="see-it-break")  # fmt: skip


# --------------------------------------------------------------------------- #
# Shutdown inside the grace period
# --------------------------------------------------------------------------- #


def test_sigterm_waits_for_the_running_task(lab: Lab, tmp_path: Path) -> None:
    assert warm_shutdown(lab, tmp_path) == [
        "after two SIGTERMs: worker running: yes, liveness probe: pass, "
        "t1 started 1x, finished 0x",
        "t1 done: worker exited with code 0, t1 started 1x, finished 1x",
    ]


KILLED = "SIGKILL after the grace period; t1 started 1x, finished 0x; "
SELF = "exited with code 0; t1 started 1x, finished 0x; "
REQUEUED = "left in the queue: 1 -> redelivered to the next worker"
EXPECTED_CUTOFF = [
    # Warm shutdown waits for t1 until the SIGKILL: acked early, t1 is gone.
    f"logged: Warm shutdown; {KILLED}left in the queue: 0 -> lost",
    f"logged: Warm shutdown; {KILLED}{REQUEUED}",
    # SIGQUIT after SIGTERM: a cold shutdown cancels t1 and exits at once.
    f"logged: Warm shutdown, Cold shutdown; {SELF}{REQUEUED}",
    # REMAP_SIGTERM=SIGQUIT: SIGTERM is cold, after a 1 s soft shutdown.
    f"logged: Cold shutdown, Soft Shutdown; {SELF}{REQUEUED}",
]


@pytest.mark.parametrize(
    "run,expected",
    list(zip(CUTOFF_RUNS, EXPECTED_CUTOFF, strict=True)),
    ids=[run[0] for run in CUTOFF_RUNS],
)
def test_a_task_longer_than_the_grace_period(
    lab: Lab,
    tmp_path: Path,
    run: tuple[str, dict[str, Any], dict[str, Any]],
    expected: str,
) -> None:
    _, conf, kw = run
    assert cut_off(lab, conf, tmp_path, **kw) == expected


# --------------------------------------------------------------------------- #
# The manifest the page shows
# --------------------------------------------------------------------------- #


def validate(version: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "kubernetes-validate"), "--strict",
         "-k", version, str(DEPLOYMENT)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("version", ["1.29.0", "1.34.0"])
def test_manifest_validates(version: str) -> None:
    result = validate(version)
    assert result.returncode == 0, result.stdout + result.stderr


def test_manifest_budget_and_probes() -> None:
    (deployment,) = yaml.safe_load_all(DEPLOYMENT.read_text())
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    command = container["command"]
    options = dict(arg.split("=", 1) for arg in command if arg.startswith("--"))
    assert command[:3] == ["celery", "--app=proj", "worker"]  # exec form, PID 1
    assert options["--prefetch-multiplier"] == "1"
    time_limit = int(options["--time-limit"])
    assert pod["terminationGracePeriodSeconds"] == time_limit + 30 == 330
    assert "readinessProbe" not in container
    live, startup = container["livenessProbe"], container["startupProbe"]
    check = ["python", "/app/celery_alive.py", "/tmp/celery-alive", "30"]
    assert live["exec"]["command"] == startup["exec"]["command"] == check
    # The file is touched every 5 s: 30 s is six missed touches. The kubelet
    # restarts after failureThreshold x periodSeconds more: 30 s.
    assert (live["periodSeconds"], live["failureThreshold"]) == (10, 3)
    assert live["timeoutSeconds"] >= 5  # a Python start on a busy node
    assert startup["periodSeconds"] * startup["failureThreshold"] == 60
