"""A loopback load balancer, and the kubelet's and control plane's side of a rollout.

``Balancer`` is a round-robin HTTP proxy over named backends that answers 502
when a backend refuses or resets: it plays kube-proxy, an ingress or a cloud
load balancer. It learns that a backend left in one of two ways:
``remove(name)`` (the EndpointSlice update reaching it) or its own health
checks (``start_health_checks``), which eject a backend after
``unhealthy_threshold`` consecutive failed checks, one every ``interval``
seconds, as cloud load balancers do.

``terminate_pod`` plays both sides of a Pod deletion at once, as Kubernetes
does: the kubelet runs the ``preStop`` sleep and then sends SIGTERM, while the
control plane's endpoint removal reaches the balancer after ``propagation``
seconds.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from snippets.support.container_orchestration_service import get
from snippets.support.processes import Lines

__all__ = [
    "WINDOW",
    "Backend",
    "Balancer",
    "Cluster",
    "Termination",
    "describe",
    "get",
    "terminate_pod",
]

ROOT = Path(__file__).resolve().parents[2]
CHILDREN = "snippets.support.container_orchestration_children"
WINDOW = 10  # requests sent while the balancer still routes to the old backend


class Balancer:
    """A round-robin HTTP proxy over named backends; 502 when a backend fails."""

    def __init__(self, backends: dict[str, int]) -> None:
        self._endpoints = list(backends.items())
        self._turn = 0
        self._lock = threading.Lock()
        self.routed: list[tuple[str, int]] = []
        self.ejected: dict[str, int] = {}  # backend -> failed checks it took
        self.rounds = 0  # health-check rounds completed
        self.failed_checks: list[tuple[str, str]] = []
        self._checked = threading.Condition(self._lock)
        self._stop = threading.Event()
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
        self.port: int = self._server.server_port
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

    def send(self, count: int) -> list[tuple[str, int]]:
        """``count`` requests through the balancer, one after another."""
        with self._lock:
            start = len(self.routed)
        for _ in range(count):
            get(self.port, "/")
        with self._lock:
            return self.routed[start:]

    def start_health_checks(
        self,
        interval: float,
        unhealthy_threshold: int,
        path: str = "/readyz",
        timeout: float = 2.0,
    ) -> None:
        """Check every backend every ``interval`` s; eject after N failures in a row."""
        threading.Thread(
            target=self._check,
            args=(interval, unhealthy_threshold, path, timeout),
            daemon=True,
        ).start()

    def _check(
        self, interval: float, threshold: int, path: str, timeout: float
    ) -> None:
        failures: dict[str, int] = {}
        while not self._stop.wait(interval):
            with self._lock:
                endpoints = list(self._endpoints)
            for name, port in endpoints:
                outcome = get(port, path, timeout=timeout)
                failed = outcome != "200"
                if failed:
                    self.failed_checks.append((name, outcome))
                failures[name] = failures.get(name, 0) + 1 if failed else 0
                if failures[name] >= threshold:
                    self.remove(name)
                    with self._lock:
                        self.ejected[name] = failures[name]
            with self._checked:
                self.rounds += 1
                self._checked.notify_all()

    def wait_rounds(self, rounds: int, timeout: float = 20.0) -> None:
        """Wait until ``rounds`` more health-check rounds have completed."""
        with self._checked:
            target = self.rounds + rounds
            if not self._checked.wait_for(lambda: self.rounds >= target, timeout):
                raise TimeoutError(
                    f"{rounds} health-check rounds took over {timeout} s"
                )

    def wait_ejected(self, name: str, timeout: float = 20.0) -> int:
        """Wait until the health checks eject ``name``; the failed checks it took."""
        with self._checked:
            if not self._checked.wait_for(lambda: name in self.ejected, timeout):
                raise TimeoutError(f"{name} was not ejected within {timeout} s")
            return self.ejected[name]

    def close(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()


class Termination:
    """What happened, and when, while a Pod was being deleted."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self._lock = threading.Lock()
        self.sigterm = threading.Event()

    def record(self, event: str) -> None:
        with self._lock:
            self.events.append(event)


def terminate_pod(
    pid: int,
    *,
    pre_stop: float,
    propagation: float,
    remove: Callable[[], None],
) -> Termination:
    """Delete the Pod whose process is ``pid``, as Kubernetes does; return at once.

    Two things start together: the kubelet sleeps ``pre_stop`` seconds (the
    ``preStop`` ``sleep`` action) and then sends SIGTERM; the control plane's
    endpoint removal reaches the balancer ``propagation`` seconds later.
    """
    termination = Termination()
    termination.record("Pod deleted")

    def kubelet() -> None:
        time.sleep(pre_stop)  # the preStop sleep action
        termination.record("SIGTERM")
        os.kill(pid, signal.SIGTERM)
        termination.sigterm.set()

    def control_plane() -> None:
        time.sleep(propagation)  # the EndpointSlice update on its way
        remove()
        termination.record("endpoint removed")

    for role in (kubelet, control_plane):
        threading.Thread(target=role, daemon=True).start()
    return termination


class Backend:
    """One ``readiness_gated_drain`` backend as a child process, read line by line."""

    def __init__(self, name: str, drain_delay: float, fail_readiness: bool) -> None:
        readiness = "--fail-readiness" if fail_readiness else "--keep-readiness"
        argv = [
            sys.executable, "-m", CHILDREN, "backend", "--name", name,
            "--host", "127.0.0.1", "--port", "0",
            "--drain-delay", f"{drain_delay:g}", "--grace", "5", readiness,
        ]  # fmt: skip
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self._lines = Lines(self.proc.stdout)

    def expect(self, prefix: str, timeout: float = 30.0) -> str:
        """Wait for the next line that starts with ``prefix`` and return it."""
        line = self._lines.first(lambda line: line.startswith(prefix), timeout)
        if line is None:
            raise TimeoutError(f"no line starting with {prefix!r}")
        return line

    def port(self) -> int:
        line = self.expect("listening on port ")
        return int(line.split()[3].rstrip(","))

    def signal(self, sig: signal.Signals) -> float:
        self.proc.send_signal(sig)
        return time.monotonic()

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class Cluster:
    """Backend ``a`` (the one that terminates), backend ``b``, and the balancer."""

    def __init__(self, drain_delay: float, *, fail_readiness: bool = True) -> None:
        self.a = Backend("a", drain_delay, fail_readiness)
        self.b = Backend("b", drain_delay, fail_readiness)
        self.ports = {"a": self.a.port(), "b": self.b.port()}
        self.balancer = Balancer(self.ports)

    def send(self, count: int) -> list[tuple[str, int]]:
        """``count`` requests through the balancer, one after another."""
        return self.balancer.send(count)

    def close(self) -> None:
        self.a.kill()
        self.b.kill()
        self.balancer.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def describe(routed: list[tuple[str, int]]) -> str:
    """``a: 502 x5, b: 200 x5``: where the requests went and what they got."""
    counts = Counter(routed)
    return ", ".join(
        f"{name}: {status} x{n}" for (name, status), n in sorted(counts.items())
    )
