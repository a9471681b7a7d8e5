"""Health probes that restart only what is stuck: liveness, readiness, startup.

Three endpoints, three questions, three different sources of truth:

* `/livez` asks "is this process making progress?". It reads heartbeats that
  the process's own loops (worker threads, the asyncio event loop) refresh on
  every iteration, and nothing else. It never calls a dependency, so a slow
  database cannot get the process restarted.
* `/readyz` asks "should traffic come here now?". It reads the last result of
  each `CachedCheck`: one background thread per dependency checks it on an
  interval with a timeout. A probe reads a cached value, so a thousand probes
  cost the dependency nothing and a probe never waits for it.
* `/startupz` asks "has warm-up finished?". Kubernetes holds the other two
  probes back until it answers 200 once.

`ProbeServer` answers on its own threads, so a busy or blocked request path
never delays a probe answer. `Service` wires the pieces together the way one
replica runs them.
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

log = logging.getLogger(__name__)

Check = Callable[[float], None]
"""A dependency check: raises if the dependency does not answer within the timeout."""

Answer = tuple[int, str]
"""An HTTP status code and a short plain-text body."""


# --8<-- [start:heartbeat]
class Heartbeat:
    """Proof of progress from one loop: the loop beats, the probe reads the age.

    Args:
        name: Shown in the `/livez` body when the heartbeat is stale.
        max_age: Seconds without a beat after which the loop counts as stuck.
            Longer than the longest legitimate pause between two beats
            (the slowest job, a full garbage collection), shorter than the
            time you are willing to serve from a wedged process.
    """

    def __init__(self, name: str, max_age: float) -> None:
        self.name = name
        self.max_age = max_age
        self._last = time.monotonic()  # a float store is atomic: no lock

    def beat(self) -> None:
        """Record progress. Call it from the loop itself, once per iteration."""
        self._last = time.monotonic()

    def age(self) -> float:
        """Seconds since the last beat."""
        return time.monotonic() - self._last

    def fresh(self) -> bool:
        """Whether the loop beat within `max_age` seconds."""
        return self.age() <= self.max_age


# --8<-- [end:heartbeat]


# --8<-- [start:worker]
def run_worker(
    jobs: queue.Queue[Callable[[], None]],
    heartbeat: Heartbeat,
    stop: threading.Event,
    poll: float = 0.1,
) -> None:
    """Run jobs until `stop` is set, beating once per iteration.

    An idle worker still beats (every `poll` seconds). A job that never
    returns, such as one blocked on a lock that is never released, stops the
    beats: that is the deadlock `/livez` exists to catch.
    """
    while not stop.is_set():
        heartbeat.beat()
        try:
            job = jobs.get(timeout=poll)
        except queue.Empty:
            continue
        try:
            job()
        except Exception:
            log.exception("job failed")  # a failed job is not a dead worker
        finally:
            jobs.task_done()


async def beat_from_loop(heartbeat: Heartbeat, interval: float) -> None:
    """Beat from an asyncio event loop until cancelled.

    Run it as a task on the loop you want to watch. Code that blocks the loop
    (a synchronous call, a CPU-bound step) delays this task too, so the
    heartbeat goes stale exactly while the loop cannot serve anything.
    """
    while True:
        heartbeat.beat()
        await asyncio.sleep(interval)


# --8<-- [end:worker]


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one dependency check."""

    ok: bool
    detail: str
    checked_at: float  # time.monotonic() when the check started


# --8<-- [start:cached-check]
class CachedCheck:
    """One dependency, checked by one background thread; probes read the result.

    However many probes arrive, the dependency sees at most one check per
    `interval` (plus the time the check itself takes, at most `timeout`).
    A result older than `max_age` counts as failed: if the checking thread
    hangs, readiness goes red instead of reporting an old success forever.

    Args:
        name: Shown in the `/readyz` body when the check fails.
        check: Raises if the dependency does not answer within its argument,
            a timeout in seconds.
        interval: Seconds between the end of one check and the next.
        timeout: Passed to `check`.
        max_age: Oldest result still trusted; defaults to
            `3 * interval + timeout`.
    """

    def __init__(
        self,
        name: str,
        check: Check,
        *,
        interval: float,
        timeout: float,
        max_age: float | None = None,
    ) -> None:
        self.name = name
        self._check, self._interval, self._timeout = check, interval, timeout
        self._max_age = 3 * interval + timeout if max_age is None else max_age
        self._result = CheckResult(False, "not checked yet", -math.inf)
        self._first = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"check-{name}", daemon=True
        )

    # --8<-- [end:cached-check]

    # --8<-- [start:cached-check-loop]
    def result(self) -> CheckResult:
        """The last result, downgraded to a failure when stale. Never blocks."""
        result = self._result  # one read of a reference published whole
        age = time.monotonic() - result.checked_at
        if result.ok and age > self._max_age:
            return CheckResult(
                False, f"stale: checked {age:.1f}s ago", result.checked_at
            )
        return result

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._check(self._timeout)
                result = CheckResult(True, "ok", started)
            except Exception as error:  # any failure means "not ready"
                result = CheckResult(False, f"{type(error).__name__}: {error}", started)
            self._result = result  # publish the finished result in one store
            self._first.set()
            self._stop.wait(self._interval)

    # --8<-- [end:cached-check-loop]

    def start(self) -> None:
        """Start checking; the first check runs at once."""
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the check in progress, if any."""
        self._stop.set()
        self._thread.join(timeout)

    def wait_first(self, timeout: float) -> bool:
        """Wait until the first check has finished; False on timeout."""
        return self._first.wait(timeout)


# --8<-- [start:health]
class Health:
    """The three answers, computed from in-process state only.

    Args:
        heartbeats: Every loop that must keep making progress.
        checks: The dependencies this replica cannot serve without.
    """

    def __init__(
        self, heartbeats: Sequence[Heartbeat], checks: Sequence[CachedCheck]
    ) -> None:
        self.heartbeats = list(heartbeats)
        self.checks = list(checks)
        self.started = threading.Event()  # set once warm-up has finished

    def livez(self) -> Answer:
        """200 while every heartbeat is fresh. Dependencies play no part."""
        stuck = [
            f"{beat.name}: no heartbeat for {beat.age():.1f}s (limit {beat.max_age:g}s)"
            for beat in self.heartbeats
            if not beat.fresh()
        ]
        return (503, "\n".join(stuck)) if stuck else (200, "ok")

    def readyz(self) -> Answer:
        """200 once started and while every cached check passed."""
        if not self.started.is_set():
            return 503, "starting"
        failing = [
            f"{check.name}: {result.detail}"
            for check in self.checks
            if not (result := check.result()).ok
        ]
        return (503, "\n".join(failing)) if failing else (200, "ok")

    def startupz(self) -> Answer:
        """200 once warm-up has finished."""
        return (200, "ok") if self.started.is_set() else (503, "starting")


# --8<-- [end:health]


class Probes(Protocol):
    """What `ProbeServer` serves: one method per endpoint."""

    def livez(self) -> Answer: ...

    def readyz(self) -> Answer: ...

    def startupz(self) -> Answer: ...


# --8<-- [start:naive]
class NaiveProbes:
    """The broken version, kept for the tests: every probe calls the dependency.

    Liveness depends on the dependency, so a slow dependency gets every replica
    restarted; and each probe is one more call to a dependency that is
    already struggling.
    """

    def __init__(self, check: Check, timeout: float) -> None:
        self._check, self._timeout = check, timeout

    def _call_dependency(self) -> Answer:
        try:
            self._check(self._timeout)  # runs on the probe's own request
        except Exception as error:
            return 503, f"{type(error).__name__}: {error}"
        return 200, "ok"

    def livez(self) -> Answer:
        return self._call_dependency()  # "alive" only if the database is

    def readyz(self) -> Answer:
        return self._call_dependency()

    def startupz(self) -> Answer:
        return 200, "ok"


# --8<-- [end:naive]


# --8<-- [start:handler]
def probe_handler(
    probes: Probes, request_timeout: float
) -> type[BaseHTTPRequestHandler]:
    """A request handler that answers the three probe paths from `probes`."""
    routes = {
        "/livez": probes.livez,
        "/readyz": probes.readyz,
        "/startupz": probes.startupz,
    }

    class Handler(BaseHTTPRequestHandler):
        timeout = request_timeout  # for reading the request, not for answering

        def do_GET(self) -> None:
            answer = routes.get(self.path.split("?", 1)[0])
            try:
                status, body = answer() if answer else (404, "not found")
            except Exception as error:  # a bug in a probe: a 500, not a hang
                status, body = 500, f"{type(error).__name__}: {error}"
            data = (body + "\n").encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                log.debug("the prober left before the answer: %s", self.path)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("probe %s", format % args)

    return Handler


# --8<-- [end:handler]


# --8<-- [start:server]
class ProbeServer:
    """Serve `/livez`, `/readyz` and `/startupz` from threads of their own.

    Each request gets its own thread, so one slow answer cannot hold the next
    probe, and the application's own request path cannot delay a probe.

    Args:
        probes: The object whose methods answer.
        host: `0.0.0.0` in a container: the kubelet probes the Pod's IP.
        port: 0 picks a free port (see `address`).
        request_timeout: Seconds a client may take to send its request.
    """

    def __init__(
        self,
        probes: Probes,
        host: str = "0.0.0.0",
        port: int = 0,
        request_timeout: float = 5.0,
    ) -> None:
        handler = probe_handler(probes, request_timeout)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},  # how soon close() takes effect
            name="probes",
            daemon=True,
        )

    # --8<-- [end:server]

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the server listens on."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Start answering in a background thread."""
        self._thread.start()

    def close(self) -> None:
        """Stop answering and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


# --8<-- [start:ping]
def ping_check(address: tuple[str, int]) -> Check:
    """A check that sends `PING` and expects `PONG` within the timeout.

    A stand-in for the cheapest request your dependency understands: `SELECT 1`
    with a statement timeout, a Redis `PING`, a broker's connection heartbeat.
    The whole exchange, connect included, must fit in one timeout.
    """

    def check(timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with socket.create_connection(address, timeout=timeout) as sock:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            sock.sendall(b"PING\n")
            reply = sock.makefile("rb").readline()
        if reply != b"PONG\n":
            raise ConnectionError(f"unexpected reply {reply!r}")

    return check


# --8<-- [end:ping]


@dataclass(frozen=True)
class ProbeSettings:
    """Timings of one replica's health state. The defaults suit the manifest.

    Attributes:
        heartbeat_max_age: A worker without a beat for this long is stuck.
        check_interval: Seconds between two checks of each dependency.
        check_timeout: Timeout of one dependency check.
        worker_poll: How often an idle worker wakes up to beat.
    """

    heartbeat_max_age: float = 10.0
    check_interval: float = 5.0
    check_timeout: float = 2.0
    worker_poll: float = 1.0


# --8<-- [start:service]
class Service:
    """One replica: a worker loop, its dependency check and its probes.

    `start()` returns at once; warm-up runs in the background and `/startupz`
    turns green when it returns. Only then does the worker start, so its
    heartbeat starts too. Until then `/livez` goes stale after
    `heartbeat_max_age`: that is why a slow warm-up needs a startup probe.
    """

    def __init__(
        self,
        dependency: Check,
        *,
        warm_up: Callable[[], None] = lambda: None,
        settings: ProbeSettings | None = None,
        host: str = "0.0.0.0",
        port: int = 0,
    ) -> None:
        s = settings or ProbeSettings()
        self.jobs: queue.Queue[Callable[[], None]] = queue.Queue()
        self.heartbeat = Heartbeat("worker", s.heartbeat_max_age)
        self.check = CachedCheck(
            "dependency", dependency, interval=s.check_interval, timeout=s.check_timeout
        )
        self.health = Health([self.heartbeat], [self.check])
        self.server = ProbeServer(self.health, host, port)
        self._warm_up, self._poll = warm_up, s.worker_poll
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # --8<-- [end:service]

    # --8<-- [start:service-start]
    def start(self) -> None:
        """Start probes and the dependency check now, the worker after warm-up."""
        self.server.start()
        self.check.start()
        self._spawn(self._start_worker, "warm-up")

    def _start_worker(self) -> None:
        self._warm_up()
        self.heartbeat.beat()  # the budget starts when the loop does
        self._spawn(
            run_worker, "worker", self.jobs, self.heartbeat, self._stop, self._poll
        )
        self.health.started.set()

    # --8<-- [end:service-start]

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop everything; a stuck worker is abandoned (it is a daemon)."""
        self._stop.set()
        self.server.close()
        self.check.stop(timeout)
        for thread in self._threads:
            thread.join(timeout)
