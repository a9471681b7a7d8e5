"""Readiness-gated drain: keep serving until load balancers stop routing to you.

When a Pod starts terminating, the control plane takes it out of its Services'
EndpointSlices while the kubelet sends SIGTERM. Every load balancer and every
node's kube-proxy learns about the removal a little later, and routes new
connections to the Pod until it does. A process that closes its port on
SIGTERM turns that window into refused connections and 502s.

`serve_with_readiness_drain` closes the window from inside the process: on
SIGTERM it fails its readiness endpoint (unless told to keep it healthy),
keeps serving for `drain_delay` seconds, and only then stops accepting and
drains (with `stop_and_drain` from
the graceful-shutdown page). A ``preStop`` ``sleep`` hook does the waiting
before SIGTERM instead, without code.

Run ``python -m snippets.container_orchestration.readiness_gated_drain no_delay``
(or ``with_delay``, ``probe``) for the page's cases.
"""

from __future__ import annotations

import os
import queue
import signal
import sys
import threading

from snippets.container_orchestration.graceful_shutdown import (
    DrainingHTTPServer,
    Log,
    WorkHandler,
    say,
    stop_and_drain,
    stop_requests,
)

__all__ = ["GatedServer", "ProbeHandler", "serve_with_readiness_drain"]


# --8<-- [start:server]
class GatedServer(DrainingHTTPServer):
    """A `DrainingHTTPServer` with a readiness flag that ``/readyz`` reports.

    Args:
        address: ``(host, port)`` to listen on; port 0 picks a free port.
        name: Returned by every other path, so a test can tell backends apart.
    """

    def __init__(self, address: tuple[str, int], name: str) -> None:
        super().__init__(address, ProbeHandler, work=lambda path: f"{name}\n")
        self.ready = threading.Event()


class ProbeHandler(WorkHandler):
    """``/readyz`` answers 200 while the server is ready and 503 while draining."""

    server: GatedServer

    def do_GET(self) -> None:
        if self.path == "/readyz":
            ready = self.server.ready.is_set()
            self.reply(200 if ready else 503, "ready\n" if ready else "draining\n")
        else:
            super().do_GET()  # every other path is served as usual, even now


# --8<-- [end:server]


# --8<-- [start:drain]
def serve_with_readiness_drain(
    server: GatedServer,
    drain_delay: float,
    grace: float,
    log: Log = say,
    *,
    fail_readiness: bool = True,
) -> int:
    """Serve; on SIGTERM keep serving `drain_delay` s, then stop accepting and drain.

    Args:
        fail_readiness: Answer ``/readyz`` with 503 from SIGTERM on, so that
            balancers that probe it stop routing here during the delay. Pass
            False to keep it healthy: when a ``preStop`` sleep does the waiting,
            or when a Service may be left with only terminating Pods and its
            proxies should fall back to them (KEP-1669).

    A second SIGTERM or SIGINT ends the delay early (Ctrl-C twice, locally).

    Returns:
        The exit status of `stop_and_drain`: 0 when every request finished.
    """
    stop = stop_requests(signal.SIGTERM, signal.SIGINT)
    accept = threading.Thread(target=server.serve_forever, args=(0.05,), name="accept")
    accept.start()
    server.ready.set()
    log(f"listening on port {server.server_port}, pid {os.getpid()}")
    reason = signal.Signals(stop.get()).name
    if fail_readiness:
        server.ready.clear()  # 1. readiness fails: balancers that probe us stop
    state = "still ready" if server.ready.is_set() else "not ready"
    log(f"{reason}: {state}, still serving for {drain_delay:g} s")
    try:
        stop.get(timeout=drain_delay)  # 2. serve while removal propagates
    except queue.Empty:
        pass
    return stop_and_drain(server, grace, reason, log)  # 3. stop intake, drain


# --8<-- [end:drain]


# --------------------------------------------------------------------------- #
# The cases the page shows: two backends as real processes behind a
# round-robin proxy (snippets/support/container_orchestration_balancer.py).
#   python -m snippets.container_orchestration.readiness_gated_drain CASE
# --------------------------------------------------------------------------- #


def _show_no_delay() -> list[str]:
    from snippets.support.container_orchestration_balancer import (
        WINDOW,
        Cluster,
        describe,
    )

    with Cluster(drain_delay=0) as cluster:
        cluster.send(4)
        cluster.a.signal(signal.SIGTERM)
        code = cluster.a.wait(timeout=10)  # a clean graceful shutdown, too early
        window = cluster.send(WINDOW)  # the balancer has not heard of it yet
        cluster.balancer.remove("a")  # now it has
        after = cluster.send(WINDOW)
    errors = [route for route in window + after if route[1] != 200]
    return [
        f"drain delay 0 s: a stops listening at SIGTERM, exits {code}",
        f"{WINDOW} requests before the balancer learns of the removal: "
        f"{describe(window)}",
        f"{WINDOW} requests after: {describe(after)}",
        f"errors at the balancer: {len(errors)}",
    ]


def _show_with_delay() -> list[str]:
    from snippets.support.container_orchestration_balancer import (
        WINDOW,
        Cluster,
        describe,
        get,
    )

    with Cluster(drain_delay=30) as cluster:  # the delay ends early, below
        cluster.send(4)
        cluster.a.signal(signal.SIGTERM)
        cluster.a.expect("SIGTERM: not ready")
        readiness = get(cluster.ports["a"], "/readyz")
        window = cluster.send(WINDOW)
        cluster.balancer.remove("a")
        after = cluster.send(WINDOW)
        cluster.a.signal(signal.SIGINT)  # what the end of the delay would do
        code = cluster.a.wait(timeout=10)
    errors = [route for route in window + after if route[1] != 200]
    return [
        f"drain delay 30 s: a answers /readyz with {readiness} and keeps serving",
        f"{WINDOW} requests before the balancer learns of the removal: "
        f"{describe(window)}",
        f"{WINDOW} requests after: {describe(after)}",
        f"errors at the balancer: {len(errors)}; a drains and exits {code}",
    ]


def _show_probe() -> list[str]:
    from snippets.support.container_orchestration_balancer import (
        WINDOW,
        Cluster,
        describe,
    )

    interval, threshold = 0.1, 3
    with Cluster(drain_delay=30) as cluster:
        cluster.balancer.start_health_checks(interval, threshold)
        cluster.balancer.wait_rounds(2)
        cluster.a.signal(signal.SIGTERM)
        cluster.a.expect("SIGTERM: not ready")
        routed = []
        while "a" not in cluster.balancer.ejected:  # a still serves meanwhile
            routed += cluster.send(1)
        failed_checks = cluster.balancer.wait_ejected("a")
        after = cluster.send(WINDOW)
        cluster.a.signal(signal.SIGINT)
        cluster.a.wait(timeout=10)
    answered = "all" if all(status == 200 for _, status in routed) else "not all"
    return [
        f"health checks every {interval:g} s, unhealthy after {threshold} failures",
        f"after SIGTERM: a ejected after {failed_checks} failed checks; "
        f"requests meanwhile answered 200: {answered}",
        f"{WINDOW} requests after: {describe(after)}",
    ]


if __name__ == "__main__":
    from snippets.support.cases import run_cases

    sys.exit(
        run_cases(
            {
                "no_delay": _show_no_delay,
                "probe": _show_probe,
                "with_delay": _show_with_delay,
            }
        )
    )
