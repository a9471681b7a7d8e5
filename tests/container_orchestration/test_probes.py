"""Tests for snippets/container_orchestration/probes.py.

The replicas are real HTTP servers on loopback and the dependency is a real TCP
server that can be made slow: it holds every reply until the test lets it go.
A small kubelet stand-in probes each replica every period, counts consecutive
failures against the manifest's `failureThreshold`, and restarts a replica
(closes it and starts a new one) when liveness fails that often in a row.
Periods are scaled from seconds to 50 ms; the restart decisions only depend on
counts, so the counts printed are the same on every run.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from snippets.container_orchestration.probes import (
    Answer,
    CachedCheck,
    Health,
    Heartbeat,
    NaiveProbes,
    ProbeServer,
    ProbeSettings,
    Service,
    beat_from_loop,
    ping_check,
    run_worker,
)
from snippets.support.container_orchestration_kubelet import (
    HOST,
    MANIFEST,
    NAIVE_CHECK_TIMEOUT,
    PROBES_PER_REPLICA,
    REPLICAS,
    ROUNDS,
    Replica,
    SlowDependency,
    cached_replica,
    get,
    manifest_probes,
    naive_replica,
    outage_table,
    probe_storm,
    run_outage,
    wait_for,
)


@pytest.fixture
def dependency() -> Iterator[SlowDependency]:
    server = SlowDependency()
    yield server
    server.close()


# --------------------------------------------------------------------------- #
# See it break, and the fix
# --------------------------------------------------------------------------- #


def test_naive_liveness_restarts_every_replica_when_the_dependency_is_slow(
    dependency: SlowDependency,
) -> None:
    outage = run_outage(lambda: naive_replica(dependency), dependency, ROUNDS)
    threshold = manifest_probes()["liveness"]["failureThreshold"]
    text = outage_table("naive", outage)
    print(text)
    assert outage.liveness_failures == REPLICAS * ROUNDS
    assert outage.restarts == REPLICAS * (ROUNDS // threshold)
    assert outage.ready_again == REPLICAS


def test_cached_probes_keep_liveness_green_and_take_replicas_out_of_traffic(
    dependency: SlowDependency,
) -> None:
    outage = run_outage(lambda: cached_replica(dependency), dependency, ROUNDS)
    text = outage_table("cached", outage)
    print(text)
    assert outage.liveness_failures == 0
    assert outage.restarts == 0
    assert outage.unready == REPLICAS  # out of the Service while it lasts
    assert outage.ready_again == REPLICAS  # and back without a restart


def test_probe_load_on_the_dependency(
    dependency: SlowDependency,
) -> None:
    interval = 0.05  # short, so that the cache refreshes during the storm
    lines = [
        f"{REPLICAS} replicas x {PROBES_PER_REPLICA} probes of /readyz, "
        f"cached checks every {interval:g} s"
    ]
    refresh = ProbeSettings(check_interval=interval, check_timeout=1.0)
    starts: list[tuple[str, Callable[[], Replica]]] = [
        ("naive", lambda: naive_replica(dependency)),
        ("cached", lambda: cached_replica(dependency, refresh)),
    ]
    for name, start in starts:
        replicas = [start() for _ in range(REPLICAS)]
        before, started = dependency.calls, time.monotonic()
        try:
            statuses = probe_storm(replicas)
            calls = dependency.calls - before  # before the replicas stop
            elapsed = time.monotonic() - started
        finally:
            for replica in replicas:
                replica.close()
        assert statuses == [200] * REPLICAS * PROBES_PER_REPLICA
        if name == "naive":
            assert calls == REPLICAS * PROBES_PER_REPLICA  # one call per probe
            lines.append(f"naive   one dependency call per probe: {calls}")
        else:
            # The checks run on their own clock, not per probe: at most one
            # per replica per interval, plus one in flight when the storm began.
            bound = REPLICAS * (elapsed / interval + 1)
            assert calls <= bound, (calls, elapsed)
            lines.append(
                "cached  calls within one per replica per check interval: "
                f"{'yes' if calls <= bound else 'no'}"
            )
    text = "\n".join(lines)
    print(text)


def test_liveness_goes_red_on_a_stuck_worker_and_naive_liveness_does_not(
    dependency: SlowDependency,
) -> None:
    settings = ProbeSettings(
        heartbeat_max_age=0.5, check_interval=0.1, check_timeout=0.5, worker_poll=0.05
    )
    service = Service(ping_check(dependency.address), settings=settings, host=HOST)
    service.start()
    # The naive replica runs the same worker loop behind NaiveProbes.
    naive = ProbeServer(
        NaiveProbes(ping_check(dependency.address), NAIVE_CHECK_TIMEOUT), HOST
    )
    naive.start()
    naive_jobs: queue.Queue[Callable[[], None]] = queue.Queue()
    naive_beat = Heartbeat("worker", settings.heartbeat_max_age)
    stop = threading.Event()
    threading.Thread(
        target=run_worker, args=(naive_jobs, naive_beat, stop, 0.05), daemon=True
    ).start()
    held = threading.Lock()

    def stuck_job() -> None:
        with held:  # another thread holds it: this never returns
            pass

    lines = ["worker blocked on a lock that another thread holds"]
    try:
        assert service.health.started.wait(5)
        assert get(service.server.address, "/livez")[0] == 200
        held.acquire()
        naive_jobs.put(stuck_job)
        service.jobs.put(stuck_job)
        assert wait_for(lambda: get(service.server.address, "/livez")[0] == 503)
        assert wait_for(lambda: not naive_beat.fresh())  # just as stuck ...
        status, body = get(service.server.address, "/livez")
        naive_status, naive_body = get(naive.address, "/livez")
        assert naive_status == 200  # ... yet its liveness probe stays green
        assert get(service.server.address, "/readyz")[0] == 200
        lines.append(f"naive  /livez -> {naive_status} {naive_body}")
        lines.append(f"cached /livez -> {status} {body.split(' for ')[0]}")
        held.release()
        assert wait_for(lambda: get(service.server.address, "/livez")[0] == 200)
        lines.append("lock released")
        lines.append(f"cached /livez -> {get(service.server.address, '/livez')[0]}")
    finally:
        if held.locked():
            held.release()
        stop.set()
        service.close()
        naive.close()
    text = "\n".join(lines)
    print(text)


# --------------------------------------------------------------------------- #
# The pieces
# --------------------------------------------------------------------------- #


def test_a_blocked_event_loop_stops_its_heartbeat() -> None:
    heartbeat = Heartbeat("event-loop", max_age=0.3)
    health = Health([heartbeat], [])
    health.started.set()
    server = ProbeServer(health, HOST)
    server.start()
    running = threading.Event()
    loop_box: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def main() -> None:
        done = asyncio.Event()
        loop_box.append((asyncio.get_running_loop(), done))
        beating = asyncio.create_task(beat_from_loop(heartbeat, 0.02))
        running.set()
        await done.wait()
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating

    runner = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    runner.start()
    release = threading.Event()
    try:
        assert running.wait(5)
        loop, done = loop_box[0]
        assert get(server.address, "/livez")[0] == 200
        loop.call_soon_threadsafe(release.wait, 10)  # a blocking call on the loop
        assert wait_for(lambda: get(server.address, "/livez")[0] == 503)
        assert "event-loop: no heartbeat" in get(server.address, "/livez")[1]
        release.set()
        assert wait_for(lambda: get(server.address, "/livez")[0] == 200)
        loop.call_soon_threadsafe(done.set)
    finally:
        release.set()
        runner.join(timeout=5)
        server.close()
    assert not runner.is_alive()


def test_startup_holds_readiness_and_a_slow_warm_up_outlives_the_heartbeat(
    dependency: SlowDependency,
) -> None:
    warm = threading.Event()

    def warm_up() -> None:
        warm.wait(10)  # loading caches, running migrations ...

    settings = ProbeSettings(
        heartbeat_max_age=0.3, check_interval=0.1, check_timeout=0.5, worker_poll=0.05
    )
    service = Service(
        ping_check(dependency.address),
        warm_up=warm_up,
        settings=settings,
        host=HOST,
    )
    service.start()
    address = service.server.address
    try:
        assert get(address, "/startupz") == (503, "starting")
        assert get(address, "/readyz") == (503, "starting")
        # Warm-up takes longer than the liveness budget: without a startup
        # probe the kubelet would be restarting this replica right now.
        assert wait_for(lambda: get(address, "/livez")[0] == 503)
        warm.set()
        assert wait_for(lambda: get(address, "/startupz")[0] == 200)
        assert wait_for(lambda: get(address, "/readyz")[0] == 200)
        assert get(address, "/livez")[0] == 200
    finally:
        warm.set()
        service.close()


def test_a_hung_check_turns_stale_and_readiness_goes_red() -> None:
    hang = threading.Event()
    released = threading.Event()

    def check(timeout: float) -> None:
        if hang.is_set():
            released.wait(10)  # a check that ignores its timeout

    cached = CachedCheck("db", check, interval=0.05, timeout=0.05, max_age=0.3)
    health = Health([], [cached])
    health.started.set()
    cached.start()
    try:
        assert cached.wait_first(5)
        assert health.readyz() == (200, "ok")
        hang.set()
        assert wait_for(lambda: health.readyz()[0] == 503)
        assert health.readyz()[1].startswith("db: stale: checked")
    finally:
        released.set()
        cached.stop(5)


def test_a_failing_check_reports_why(dependency: SlowDependency) -> None:
    dependency.degrade()
    cached = CachedCheck("db", ping_check(dependency.address), interval=10, timeout=0.1)
    cached.start()
    try:
        assert cached.wait_first(5)
        result = cached.result()
        assert not result.ok
        assert result.detail.startswith(("TimeoutError", "timeout"))
    finally:
        dependency.recover()
        cached.stop(5)


def test_a_probe_that_raises_answers_500_and_unknown_paths_404() -> None:
    class Broken:
        def livez(self) -> Answer:
            raise RuntimeError("bug in a probe")

        def readyz(self) -> Answer:
            return 200, "ok"

        def startupz(self) -> Answer:
            return 200, "ok"

    server = ProbeServer(Broken(), HOST)
    server.start()
    try:
        assert get(server.address, "/livez") == (500, "RuntimeError: bug in a probe")
        assert get(server.address, "/readyz?verbose=1") == (200, "ok")
        assert get(server.address, "/metrics")[0] == 404
    finally:
        server.close()


# --------------------------------------------------------------------------- #
# The manifest
# --------------------------------------------------------------------------- #

KUBERNETES_VALIDATE = Path(sys.executable).parent / "kubernetes-validate"


@pytest.mark.parametrize("version", ["1.28.0", "1.37.0"])
def test_manifest_is_valid_kubernetes(version: str) -> None:
    result = subprocess.run(
        [str(KUBERNETES_VALIDATE), "--strict", "-k", version, str(MANIFEST)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    print(result.stdout, result.stderr)
    assert result.returncode == 0, result.stdout + result.stderr


def test_strict_validation_catches_a_misspelled_probe_field(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        MANIFEST.read_text().replace("failureThreshold: 3", "failureTreshold: 3")
    )
    result = subprocess.run(
        [str(KUBERNETES_VALIDATE), "--strict", "-k", "1.28.0", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "failureTreshold" in result.stdout + result.stderr


def test_manifest_probe_fields_match_the_page() -> None:
    deployment = {d["kind"]: d for d in yaml.safe_load_all(MANIFEST.read_text())}[
        "Deployment"
    ]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    probes = manifest_probes()
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    paths = {kind: probe["httpGet"]["path"] for kind, probe in probes.items()}
    assert paths == {
        "startup": "/startupz",
        "liveness": "/livez",
        "readiness": "/readyz",
    }
    assert {probe["httpGet"]["port"] for probe in probes.values()} == {"probes"}
    assert ports["probes"] != ports["http"]  # probes have their own listener
    startup, liveness, readiness = (
        probes[k] for k in ("startup", "liveness", "readiness")
    )
    assert startup["periodSeconds"] * startup["failureThreshold"] == 120
    assert (liveness["periodSeconds"], liveness["timeoutSeconds"]) == (10, 2)
    assert liveness["failureThreshold"] == 3
    assert (readiness["periodSeconds"], readiness["timeoutSeconds"]) == (5, 2)
    assert readiness["failureThreshold"] == 2
    # successThreshold must be 1 for liveness and startup: leave the default.
    assert all("successThreshold" not in probe for probe in probes.values())
    # Probe-level grace: allowed on liveness, rejected by the API on readiness.
    assert liveness["terminationGracePeriodSeconds"] == 10
    assert (
        liveness["terminationGracePeriodSeconds"] < pod["terminationGracePeriodSeconds"]
    )
    assert "terminationGracePeriodSeconds" not in readiness
    # The default heartbeat limit fits inside the liveness budget.
    budget = liveness["periodSeconds"] * liveness["failureThreshold"]
    assert ProbeSettings().heartbeat_max_age < budget


def test_manifest_has_a_disruption_budget_and_a_surge_first_rollout() -> None:
    documents = {d["kind"]: d for d in yaml.safe_load_all(MANIFEST.read_text())}
    deployment, budget = documents["Deployment"], documents["PodDisruptionBudget"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    rolling = deployment["spec"]["strategy"]["rollingUpdate"]

    assert budget["spec"]["selector"]["matchLabels"] == labels
    assert budget["spec"]["maxUnavailable"] == 1
    assert (rolling["maxUnavailable"], rolling["maxSurge"]) == (0, 1)
