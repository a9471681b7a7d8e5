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

Run ``python -m snippets.container_orchestration.readiness_gated_drain --help``.
"""

from __future__ import annotations

import argparse
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


def main(argv: list[str] | None = None) -> int:
    """Run one backend; return its exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m snippets.container_orchestration.readiness_gated_drain",
        description="A backend that drains behind its readiness endpoint.",
    )
    parser.add_argument("--name", default=os.environ.get("HOSTNAME", "backend"))
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--drain-delay",
        type=float,
        default=float(os.environ.get("DRAIN_DELAY_SECONDS", "0")),
        help="seconds to keep serving after SIGTERM (default: "
        "$DRAIN_DELAY_SECONDS or 0, for a preStop sleep hook doing the waiting)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=float(os.environ.get("SHUTDOWN_GRACE_SECONDS", "20")),
        help="seconds to drain in-flight requests after the delay",
    )
    readiness = parser.add_mutually_exclusive_group()
    readiness.add_argument(
        "--fail-readiness",
        dest="fail_readiness",
        action="store_true",
        help="answer /readyz with 503 from SIGTERM on (the default unless "
        "$FAIL_READINESS_ON_SIGTERM is 0)",
    )
    readiness.add_argument(
        "--keep-readiness",
        dest="fail_readiness",
        action="store_false",
        help="keep /readyz healthy after SIGTERM",
    )
    parser.set_defaults(
        fail_readiness=os.environ.get("FAIL_READINESS_ON_SIGTERM", "1") != "0"
    )
    args = parser.parse_args(argv)
    server = GatedServer((args.host, args.port), args.name)
    return serve_with_readiness_drain(
        server, args.drain_delay, args.grace, fail_readiness=args.fail_readiness
    )


if __name__ == "__main__":
    sys.exit(main())
