"""Replicas with probes, a dependency that can be made slow, and a kubelet stand-in.

The replicas are real HTTP servers on loopback and the dependency is a real TCP
server that holds every reply while it is degraded. `Kubelet` probes each
replica every period, counts consecutive failures against the manifest's
`failureThreshold`, and restarts a replica (closes it and starts a new one)
when liveness fails that often in a row. Periods are scaled from seconds to
50 ms; the restart decisions depend only on counts.
"""

from __future__ import annotations

import http.client
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from snippets.container_orchestration.probes import (
    Answer,
    NaiveProbes,
    ProbeServer,
    ProbeSettings,
    Service,
    ping_check,
)

__all__ = [
    "FAST",
    "HOST",
    "MANIFEST",
    "NAIVE_CHECK_TIMEOUT",
    "PROBES_PER_REPLICA",
    "REPLICAS",
    "ROUNDS",
    "Kubelet",
    "Outage",
    "Replica",
    "SlowDependency",
    "cached_replica",
    "get",
    "manifest_probes",
    "naive_replica",
    "outage_table",
    "probe_storm",
    "run_outage",
    "wait_for",
]

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "snippets/container_orchestration/manifests/probes.deployment.yaml"
HOST = "127.0.0.1"
PERIOD = 0.05  # the kubelet stand-in's probe period (scaled down from seconds)
# The kubelet stand-in's per-probe timeout. It leaves a loaded machine time to
# answer a cached probe; a naive probe fails sooner, by its own check timeout.
PROBE_TIMEOUT = 1.0
NAIVE_CHECK_TIMEOUT = 0.5
REPLICAS = 3
FAST = ProbeSettings(
    heartbeat_max_age=1.0, check_interval=0.1, check_timeout=0.2, worker_poll=0.05
)


# --------------------------------------------------------------------------- #
# A dependency that can be made slow, and HTTP helpers
# --------------------------------------------------------------------------- #


class SlowDependency:
    """A TCP server answering `PING` with `PONG`; `degrade()` holds the replies.

    It counts every request it receives, so the tests can see how much load
    the probes put on it.
    """

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()
        self._healthy = threading.Event()
        self._healthy.set()
        dependency = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                if self.rfile.readline() != b"PING\n":
                    return
                with dependency._lock:
                    dependency.calls += 1
                dependency._healthy.wait(timeout=10)  # slow: hold the reply
                try:
                    self.wfile.write(b"PONG\n")
                except OSError:
                    pass  # the caller gave up waiting: its timeout fired

        self._server = socketserver.ThreadingTCPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self.address: tuple[str, int] = self._server.server_address[:2]  # type: ignore[assignment]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def degrade(self) -> None:
        self._healthy.clear()

    def recover(self) -> None:
        self._healthy.set()

    def close(self) -> None:
        self.recover()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def get(address: tuple[str, int], path: str, timeout: float = 2.0) -> Answer:
    """One GET; a timeout or a refused connection comes back as status 0."""
    conn = http.client.HTTPConnection(*address, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode().strip()
    except OSError as error:
        return 0, type(error).__name__
    finally:
        conn.close()


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll `condition` until it holds or `timeout` passes (a bounded wait)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


# --------------------------------------------------------------------------- #
# Replicas and a kubelet stand-in
# --------------------------------------------------------------------------- #


@dataclass
class Replica:
    address: tuple[str, int]
    close: Callable[[], None]


def naive_replica(dependency: SlowDependency) -> Replica:
    server = ProbeServer(
        NaiveProbes(ping_check(dependency.address), NAIVE_CHECK_TIMEOUT), HOST
    )
    server.start()
    return Replica(server.address, server.close)


def cached_replica(
    dependency: SlowDependency, settings: ProbeSettings = FAST
) -> Replica:
    service = Service(ping_check(dependency.address), settings=settings, host=HOST)
    service.start()
    assert service.check.wait_first(5) and service.health.started.wait(5)
    return Replica(service.server.address, service.close)


def manifest_probes() -> dict[str, dict[str, Any]]:
    deployment = {d["kind"]: d for d in yaml.safe_load_all(MANIFEST.read_text())}[
        "Deployment"
    ]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {
        kind: container[f"{kind}Probe"] for kind in ("startup", "liveness", "readiness")
    }


@dataclass
class Pod:
    """What the kubelet knows about one replica."""

    replica: Replica
    ready: bool = False
    live_streak: int = 0
    ready_streak: int = 0
    liveness_failures: int = 0
    restarts: int = 0
    went_unready: bool = False


@dataclass
class Kubelet:
    """Probe every pod each period and act on `failureThreshold` like a kubelet.

    Liveness and readiness run every period; the real kubelet has no startup
    probe phase here because the naive replicas have none and the cached
    replicas are started before the kubelet takes over.
    """

    start: Callable[[], Replica]
    pods: list[Pod] = field(default_factory=list)

    def __post_init__(self) -> None:
        probes = manifest_probes()
        self.liveness_threshold = int(probes["liveness"]["failureThreshold"])
        self.readiness_threshold = int(probes["readiness"]["failureThreshold"])
        self.pods = [Pod(self.start()) for _ in range(REPLICAS)]

    def probe_once(self, pod: Pod) -> None:
        if 200 <= get(pod.replica.address, "/livez", PROBE_TIMEOUT)[0] < 400:
            pod.live_streak = 0
        else:
            pod.liveness_failures += 1
            pod.live_streak += 1
            if pod.live_streak >= self.liveness_threshold:
                pod.replica.close()  # kill and start again: a restart
                pod.replica = self.start()
                pod.restarts += 1
                pod.live_streak = pod.ready_streak = 0
                pod.ready = False  # a new container starts not ready
                return
        if 200 <= get(pod.replica.address, "/readyz", PROBE_TIMEOUT)[0] < 400:
            pod.ready_streak, pod.ready = 0, True
        else:
            pod.ready_streak += 1
            if pod.ready and pod.ready_streak >= self.readiness_threshold:
                pod.ready, pod.went_unready = False, True

    def run(self, until: Callable[[Pod, int], bool], max_rounds: int = 200) -> None:
        """Probe all pods in parallel, each until `until(pod, rounds)` holds."""

        def supervise(pod: Pod) -> None:
            for rounds in range(1, max_rounds + 1):
                time.sleep(PERIOD)  # the probe period, not a synchronization
                self.probe_once(pod)
                if until(pod, rounds):
                    return

        threads = [threading.Thread(target=supervise, args=(p,)) for p in self.pods]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
            assert not thread.is_alive(), "the kubelet stand-in is stuck"

    def close(self) -> None:
        for pod in self.pods:
            pod.replica.close()


@dataclass(frozen=True)
class Outage:
    liveness_failures: int
    restarts: int
    unready: int
    ready_again: int


def run_outage(
    start: Callable[[], Replica], dependency: SlowDependency, rounds: int
) -> Outage:
    """Ready → dependency slow for at least `rounds` periods → recovered."""
    kubelet = Kubelet(start)
    try:
        kubelet.run(until=lambda pod, _: pod.ready)
        assert all(pod.ready for pod in kubelet.pods), "replicas never became ready"
        for pod in kubelet.pods:
            pod.liveness_failures = pod.restarts = 0
        dependency.degrade()
        kubelet.run(until=lambda pod, n: n >= rounds and pod.went_unready)
        outage = (
            sum(pod.liveness_failures for pod in kubelet.pods),
            sum(pod.restarts for pod in kubelet.pods),
            sum(pod.went_unready for pod in kubelet.pods),
        )
        dependency.recover()
        kubelet.run(until=lambda pod, _: pod.ready)
        return Outage(*outage, sum(pod.ready for pod in kubelet.pods))
    finally:
        dependency.recover()
        kubelet.close()


def outage_table(name: str, outage: Outage) -> str:
    threshold = manifest_probes()["liveness"]["failureThreshold"]
    return "\n".join(
        [
            f"{REPLICAS} replicas, dependency slow for {ROUNDS}+ probe periods, "
            f"liveness failureThreshold {threshold}",
            "probes  liveness failures  restarts  unready  ready again",
            f"{name:<7}{outage.liveness_failures:>18}{outage.restarts:>10}"
            f"{outage.unready:>7}/{REPLICAS}{outage.ready_again:>11}/{REPLICAS}",
        ]
    )


ROUNDS = 6
PROBES_PER_REPLICA = 50


def probe_storm(replicas: list[Replica]) -> list[int]:
    """Send PROBES_PER_REPLICA `/readyz` probes to every replica at once."""
    statuses: list[int] = []
    lock = threading.Lock()

    def hammer(replica: Replica) -> None:
        for _ in range(PROBES_PER_REPLICA):
            status = get(replica.address, "/readyz")[0]
            with lock:
                statuses.append(status)

    threads = [threading.Thread(target=hammer, args=(r,)) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive()
    return statuses
