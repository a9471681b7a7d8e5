"""The cases the probes page shows.

    python -m snippets.container_orchestration.probes.demo CASE

Replicas and a slow dependency run on loopback, probed by a kubelet stand-in
(snippets/support/container_orchestration_kubelet.py).
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable

from snippets.container_orchestration.probes import (
    Heartbeat,
    NaiveProbes,
    ProbeServer,
    ProbeSettings,
    Service,
    ping_check,
    run_worker,
)
from snippets.support.cases import run_cases
from snippets.support.container_orchestration_kubelet import (
    HOST,
    NAIVE_CHECK_TIMEOUT,
    PROBES_PER_REPLICA,
    REPLICAS,
    ROUNDS,
    Replica,
    SlowDependency,
    cached_replica,
    get,
    naive_replica,
    outage_table,
    probe_storm,
    run_outage,
    wait_for,
)


def outage(name: str) -> list[str]:
    """Ready, then the dependency slow for ROUNDS probe periods, then recovered."""
    dependency = SlowDependency()
    try:
        start = naive_replica if name == "naive" else cached_replica
        result = run_outage(lambda: start(dependency), dependency, ROUNDS)
    finally:
        dependency.close()
    return outage_table(name, result).split("\n")


def load(interval: float = 0.05) -> list[str]:
    """A storm of `/readyz` probes: how many reach the dependency."""
    lines = [
        f"{REPLICAS} replicas x {PROBES_PER_REPLICA} probes of /readyz, "
        f"cached checks every {interval:g} s"
    ]
    dependency = SlowDependency()
    refresh = ProbeSettings(check_interval=interval, check_timeout=1.0)
    starts: list[tuple[str, Callable[[], Replica]]] = [
        ("naive", lambda: naive_replica(dependency)),
        ("cached", lambda: cached_replica(dependency, refresh)),
    ]
    try:
        for name, start in starts:
            replicas = [start() for _ in range(REPLICAS)]
            before, started = dependency.calls, time.monotonic()
            try:
                probe_storm(replicas)
                calls = dependency.calls - before  # before the replicas stop
                elapsed = time.monotonic() - started
            finally:
                for replica in replicas:
                    replica.close()
            if name == "naive":
                lines.append(f"naive   one dependency call per probe: {calls}")
            else:
                bound = REPLICAS * (elapsed / interval + 1)
                lines.append(
                    "cached  calls within one per replica per check interval: "
                    f"{'yes' if calls <= bound else 'no'}"
                )
    finally:
        dependency.close()
    return lines


def deadlock() -> list[str]:
    """A worker blocked on a lock: the heartbeat goes stale, naive probes stay 200."""
    dependency = SlowDependency()
    settings = ProbeSettings(
        heartbeat_max_age=0.5, check_interval=0.1, check_timeout=0.5, worker_poll=0.05
    )
    service = Service(ping_check(dependency.address), settings=settings, host=HOST)
    service.start()
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
        service.health.started.wait(5)
        held.acquire()
        naive_jobs.put(stuck_job)
        service.jobs.put(stuck_job)
        wait_for(lambda: get(service.server.address, "/livez")[0] == 503)
        wait_for(lambda: not naive_beat.fresh())
        status, body = get(service.server.address, "/livez")
        naive_status, naive_body = get(naive.address, "/livez")
        lines.append(f"naive  /livez -> {naive_status} {naive_body}")
        lines.append(f"cached /livez -> {status} {body.split(' for ')[0]}")
        held.release()
        wait_for(lambda: get(service.server.address, "/livez")[0] == 200)
        lines.append("lock released")
        lines.append(f"cached /livez -> {get(service.server.address, '/livez')[0]}")
    finally:
        if held.locked():
            held.release()
        stop.set()
        service.close()
        naive.close()
        dependency.close()
    return lines


if __name__ == "__main__":
    sys.exit(
        run_cases(
            {
                "cached-outage": lambda: outage("cached"),
                "deadlock": deadlock,
                "load": load,
                "naive-outage": lambda: outage("naive"),
            }
        )
    )
