"""Tests for snippets/container_orchestration/readiness_gated_drain.py.

Two backends run as real processes behind `Balancer`, a round-robin HTTP proxy
in the test process. The balancer plays kube-proxy or an ingress: it keeps
routing to a backend until it learns that the backend was removed. The test
plays the control plane and decides when that news arrives (`remove`), so the
window between SIGTERM and the removal is exact: the test sends ten requests
through the balancer inside it. A balancer that health-checks backends itself
(`probe`) learns earlier, from the readiness endpoint.
"""

from __future__ import annotations

import http.client
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, OutputCheck
from tests.container_orchestration.test_graceful_shutdown import Service, get

MODULE = "snippets.container_orchestration.readiness_gated_drain"
DEPLOYMENT = (
    ROOT
    / "snippets"
    / "container_orchestration"
    / "manifests"
    / "readiness-gated-drain.deployment.yaml"
)
WINDOW = 10  # requests sent while the balancer still routes to the old backend


class Balancer:
    """A round-robin HTTP proxy over named backends; 502 when a backend fails."""

    def __init__(self, backends: dict[str, int]) -> None:
        self._endpoints = list(backends.items())
        self._turn = 0
        self._lock = threading.Lock()
        self.routed: list[tuple[str, int]] = []
        balancer = self

        class Proxy(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name, port = balancer.pick()
                status, body = balancer.forward(port, self.path)
                with balancer._lock:
                    balancer.routed.append((name, status))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
        self.port = self._server.server_port
        threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        ).start()

    def pick(self) -> tuple[str, int]:
        with self._lock:
            endpoint = self._endpoints[self._turn % len(self._endpoints)]
            self._turn += 1
            return endpoint

    @staticmethod
    def forward(port: int, path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        except OSError as error:  # refused, reset: the backend is gone
            return 502, f"bad gateway: {error}\n".encode()
        finally:
            conn.close()

    def remove(self, name: str) -> None:
        """The EndpointSlice update reaches the balancer."""
        with self._lock:
            self._endpoints = [e for e in self._endpoints if e[0] != name]
            self._turn = 0

    def probe(self) -> list[str]:
        """One round of health checks on /readyz; drop the failing backends."""
        failing = [
            name
            for name, port in list(self._endpoints)
            if get(port, "/readyz") != "200"
        ]
        for name in failing:
            self.remove(name)
        return failing

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Cluster:
    """Backend `a` (the one that terminates), backend `b`, and the balancer."""

    def __init__(self, drain_delay: float) -> None:
        self.a = self._backend("a", drain_delay)
        self.b = self._backend("b", drain_delay)
        self.ports = {"a": self.a.port(), "b": self.b.port()}
        self.balancer = Balancer(self.ports)

    @staticmethod
    def _backend(name: str, drain_delay: float) -> Service:
        return Service(
            [sys.executable, "-m", MODULE, "--name", name, "--host", "127.0.0.1",
             "--port", "0", "--drain-delay", f"{drain_delay:g}", "--grace", "5"]
        )  # fmt: skip

    def send(self, count: int) -> list[tuple[str, int]]:
        """`count` requests through the balancer, one after another."""
        start = len(self.balancer.routed)
        for _ in range(count):
            get(self.balancer.port, "/")
        return self.balancer.routed[start:]

    def close(self) -> None:
        self.a.kill()
        self.b.kill()
        self.balancer.close()


@pytest.fixture
def clusters() -> Iterator[list[Cluster]]:
    made: list[Cluster] = []
    yield made
    for cluster in made:
        cluster.close()


def describe(routed: list[tuple[str, int]]) -> str:
    counts = Counter(routed)
    return ", ".join(
        f"{name}: {status} x{n}" for (name, status), n in sorted(counts.items())
    )


# --------------------------------------------------------------------------- #
# See it break: the backend stops listening before the balancer has caught up
# --------------------------------------------------------------------------- #


def test_closing_the_port_at_sigterm_fails_requests_still_routed_to_it(
    clusters: list[Cluster], expected_output: OutputCheck
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
    expected_output(
        "container_orchestration/readiness_gated_drain.no_delay",
        "drain delay 0 s: a stops listening at SIGTERM, exits 0\n"
        f"{WINDOW} requests before the balancer learns of the removal: "
        f"{describe(window)}\n"
        f"{WINDOW} requests after: {describe(after)}\n"
        f"errors at the balancer: {len(errors)}",
    )


# --------------------------------------------------------------------------- #
# The pattern: fail readiness, keep serving through the window, then drain
# --------------------------------------------------------------------------- #


def test_readiness_gated_drain_serves_until_the_balancer_has_caught_up(
    clusters: list[Cluster], expected_output: OutputCheck
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
    expected_output(
        "container_orchestration/readiness_gated_drain.with_delay",
        f"drain delay 30 s: a answers /readyz with {readiness} and keeps serving\n"
        f"{WINDOW} requests before the balancer learns of the removal: "
        f"{describe(window)}\n"
        f"{WINDOW} requests after: {describe(after)}\n"
        f"errors at the balancer: {len(errors)}; a drains and exits {code}",
    )


def test_a_balancer_that_probes_readiness_stops_routing_early(
    clusters: list[Cluster], expected_output: OutputCheck
) -> None:
    cluster = Cluster(drain_delay=30)
    clusters.append(cluster)
    assert cluster.balancer.probe() == []

    cluster.a.signal(signal.SIGTERM)
    cluster.a.expect("SIGTERM: not ready")
    dropped = cluster.balancer.probe()  # before any EndpointSlice update
    routed = cluster.send(WINDOW)
    cluster.a.signal(signal.SIGINT)
    code = cluster.a.wait(timeout=5)

    assert dropped == ["a"]
    assert {name for name, _ in routed} == {"b"}
    assert all(status == 200 for _, status in routed)
    assert code == 0
    expected_output(
        "container_orchestration/readiness_gated_drain.probe",
        f"after SIGTERM, one health-check round drops: {', '.join(dropped)}\n"
        f"{WINDOW} requests: {describe(routed)}",
    )


def test_a_prestop_sleep_holds_sigterm_back_until_the_window_is_over(
    clusters: list[Cluster],
) -> None:
    # The kubelet runs the preStop hook first: the process sees no signal while
    # the removal propagates, and needs no delay of its own (drain delay 0).
    cluster = Cluster(drain_delay=0)
    clusters.append(cluster)
    window = cluster.send(WINDOW)  # during the hook's sleep
    cluster.balancer.remove("a")
    cluster.a.signal(signal.SIGTERM)  # after the hook
    code = cluster.a.wait(timeout=5)
    after = cluster.send(WINDOW)

    assert [status for _, status in window + after] == [200] * (2 * WINDOW)
    assert code == 0


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

    assert kinds == ["Service", "Deployment"]
    assert probe["httpGet"]["path"] == "/readyz"
    assert (sleep, env["DRAIN_DELAY_SECONDS"]) == (10, 0)  # one of them waits
    budget = sleep + env["DRAIN_DELAY_SECONDS"] + env["SHUTDOWN_GRACE_SECONDS"]
    assert (budget, pod["terminationGracePeriodSeconds"]) == (25, 30)
