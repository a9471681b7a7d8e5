"""Tests for snippets/container_orchestration/readiness_gated_drain.py.

Two backends run as real processes behind `Balancer`, a round-robin HTTP proxy
in the test process. The balancer plays kube-proxy or an ingress: it keeps
routing to a backend until it learns that the backend was removed. The test
plays the control plane and decides when that news arrives (`remove`), so the
window between SIGTERM and the removal is exact: the test sends ten requests
through the balancer inside it. A balancer that health-checks backends itself
learns from the readiness endpoint instead, after its unhealthy threshold.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from snippets.support.container_orchestration_balancer import (
    WINDOW,
    Cluster,
    get,
    terminate_pod,
)
from tests.conftest import ROOT

DEPLOYMENT = (
    ROOT
    / "snippets"
    / "container_orchestration"
    / "manifests"
    / "readiness-gated-drain.deployment.yaml"
)


@pytest.fixture
def clusters() -> Iterator[list[Cluster]]:
    made: list[Cluster] = []
    yield made
    for cluster in made:
        cluster.close()


# --------------------------------------------------------------------------- #
# See it break: the backend stops listening before the balancer has caught up
# --------------------------------------------------------------------------- #


def test_closing_the_port_at_sigterm_fails_requests_still_routed_to_it(
    clusters: list[Cluster],
) -> None:
    cluster = Cluster(drain_delay=0)
    clusters.append(cluster)
    assert all(status == 200 for _, status in cluster.send(4))

    cluster.a.signal(signal.SIGTERM)
    assert cluster.a.wait(timeout=5) == 0  # a clean graceful shutdown, too early
    window = cluster.send(WINDOW)  # the balancer has not heard of it yet
    cluster.balancer.remove("a")  # now it has
    after = cluster.send(WINDOW)

    errors = [route for route in window + after if route[1] != 200]
    assert errors == [("a", 502)] * (WINDOW // 2)
    assert {name for name, _ in after} == {"b"}


# --------------------------------------------------------------------------- #
# The pattern: fail readiness, keep serving through the window, then drain
# --------------------------------------------------------------------------- #


def test_readiness_gated_drain_serves_until_the_balancer_has_caught_up(
    clusters: list[Cluster],
) -> None:
    cluster = Cluster(drain_delay=30)  # ended early below, once the window is over
    clusters.append(cluster)
    assert all(status == 200 for _, status in cluster.send(4))

    cluster.a.signal(signal.SIGTERM)
    cluster.a.expect("SIGTERM: not ready")
    readiness = get(cluster.ports["a"], "/readyz")
    window = cluster.send(WINDOW)
    cluster.balancer.remove("a")
    after = cluster.send(WINDOW)
    cluster.a.signal(signal.SIGINT)  # what the end of the delay would do
    draining = cluster.a.expect("SIGTERM: stopped accepting")
    code = cluster.a.wait(timeout=5)

    errors = [route for route in window + after if route[1] != 200]
    assert readiness == "503"
    assert ("a", 200) in window
    assert errors == []
    assert draining.endswith("draining 0 in flight")
    assert code == 0


def test_a_balancer_that_probes_readiness_ejects_after_its_unhealthy_threshold(
    clusters: list[Cluster],
) -> None:
    interval, threshold = 0.1, 3
    cluster = Cluster(drain_delay=30)
    clusters.append(cluster)
    cluster.balancer.start_health_checks(interval, threshold)
    cluster.balancer.wait_rounds(2)
    assert cluster.balancer.ejected == {}

    sent = cluster.a.signal(signal.SIGTERM)
    cluster.a.expect("SIGTERM: not ready")
    routed = []
    while "a" not in cluster.balancer.ejected:  # a still serves while it fails
        routed += cluster.send(1)
    failed_checks = cluster.balancer.wait_ejected("a")
    took = time.monotonic() - sent
    after = cluster.send(WINDOW)
    cluster.a.signal(signal.SIGINT)
    code = cluster.a.wait(timeout=5)

    assert failed_checks == threshold
    assert took >= (threshold - 1) * interval  # not sooner than N checks allow
    assert all(status == 200 for _, status in routed + after)
    assert {name for name, _ in after} == {"b"}
    assert code == 0


def test_with_readiness_kept_a_probing_balancer_keeps_routing_during_the_delay(
    clusters: list[Cluster],
) -> None:
    """The switch: for a preStop-driven drain, or Services that may be left with
    only terminating Pods (KEP-1669), `/readyz` stays 200 after SIGTERM."""
    cluster = Cluster(drain_delay=30, fail_readiness=False)
    clusters.append(cluster)
    cluster.balancer.start_health_checks(interval=0.1, unhealthy_threshold=2)

    cluster.a.signal(signal.SIGTERM)
    cluster.a.expect("SIGTERM: still ready")
    readiness = get(cluster.ports["a"], "/readyz")
    cluster.balancer.wait_rounds(4)  # twice the threshold
    routed = cluster.send(WINDOW)
    ejected = dict(cluster.balancer.ejected)  # before a closes its port
    cluster.a.signal(signal.SIGINT)
    code = cluster.a.wait(timeout=5)

    assert readiness == "200"
    assert ejected == {}, cluster.balancer.failed_checks
    assert {name for name, _ in routed} == {"a", "b"}
    assert all(status == 200 for _, status in routed)
    assert code == 0


def test_a_prestop_sleep_keeps_the_port_open_until_the_removal_has_propagated(
    clusters: list[Cluster],
) -> None:
    """The kubelet sleeps in preStop while the removal propagates, then SIGTERM.

    The backend has no drain delay of its own: it closes its port at SIGTERM.
    Requests flow the whole time; none fails, because SIGTERM comes after the
    balancer stopped routing to the Pod.
    """
    cluster = Cluster(drain_delay=0)
    clusters.append(cluster)
    termination = terminate_pod(
        cluster.a.proc.pid,
        pre_stop=1.5,
        propagation=0.3,
        remove=lambda: cluster.balancer.remove("a"),
    )
    routed = []
    while cluster.a.proc.poll() is None:
        routed += cluster.send(1)
    routed += cluster.send(WINDOW)

    assert termination.sigterm.is_set()
    assert termination.events == ["Pod deleted", "endpoint removed", "SIGTERM"]
    assert ("a", 200) in routed  # a served until the removal arrived
    assert [route for route in routed if route[1] != 200] == []
    assert cluster.a.wait(timeout=5) == 0


# --------------------------------------------------------------------------- #
# The manifest the page shows
# --------------------------------------------------------------------------- #


def validate(version: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "kubernetes-validate"), "--strict",
         "-k", version, str(DEPLOYMENT)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("version", ["1.29.0", "1.30.0", "1.34.0"])
def test_manifest_validates_from_kubernetes_1_29(version: str) -> None:
    result = validate(version)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_prestop_sleep_action_does_not_exist_in_1_28() -> None:
    result = validate("1.28.0")
    assert result.returncode != 0
    assert "'sleep' was unexpected" in result.stdout + result.stderr


def test_manifest_budget_and_probe() -> None:
    documents = list(yaml.safe_load_all(DEPLOYMENT.read_text()))
    kinds = [document["kind"] for document in documents]
    deployment = documents[kinds.index("Deployment")]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {item["name"]: float(item["value"]) for item in container["env"]}
    sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    probe = container["readinessProbe"]

    assert kinds == ["Service", "Deployment", "PodDisruptionBudget"]
    assert probe["httpGet"]["path"] == "/readyz"
    assert (sleep, env["DRAIN_DELAY_SECONDS"]) == (10, 0)  # one of them waits
    assert env["FAIL_READINESS_ON_SIGTERM"] == 0  # the hook waits: stay ready
    budget = sleep + env["DRAIN_DELAY_SECONDS"] + env["SHUTDOWN_GRACE_SECONDS"]
    assert (budget, pod["terminationGracePeriodSeconds"]) == (25, 30)


def test_manifest_has_a_disruption_budget_and_a_surge_first_rollout() -> None:
    documents = {d["kind"]: d for d in yaml.safe_load_all(DEPLOYMENT.read_text())}
    deployment, budget = documents["Deployment"], documents["PodDisruptionBudget"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    rolling = deployment["spec"]["strategy"]["rollingUpdate"]

    assert budget["spec"]["selector"]["matchLabels"] == labels
    assert budget["spec"]["maxUnavailable"] == 1
    assert (rolling["maxUnavailable"], rolling["maxSurge"]) == (0, 1)
