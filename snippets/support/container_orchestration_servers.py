"""gunicorn, uvicorn and gevent's WSGIServer as real processes, with requests
held in flight.

`Server` starts one (in a session of its own, so that a SIGKILL reaches the
master and its workers together, as a container runtime's does) and reads its
log. `shutdown` holds `IN_FLIGHT` requests at a `Gate`, sends a signal to the
master, optionally sends one more request after it, releases the gate or not,
and reports what each client saw and how the server ended.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

from snippets.support.container_orchestration_service import (
    Gate,
    Requests,
    exit_text,
)
from snippets.support.processes import Lines, kill_session

__all__ = [
    "ASGI_APP",
    "CONF",
    "IN_FLIGHT",
    "PRELOAD_APP",
    "SETTLE",
    "WSGI_APP",
    "Report",
    "Run",
    "Server",
    "gevent_server",
    "gunicorn",
    "late_request",
    "report",
    "shutdown",
    "summary",
    "uvicorn",
    "versions",
]

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "snippets.container_orchestration.gunicorn_uvicorn_shutdown"
CONF = f"{PACKAGE.replace('.', '/')}/gunicorn_conf.py"
WSGI_APP = f"{PACKAGE}:app"
ASGI_APP = f"{PACKAGE}:asgi_app"
PRELOAD_APP = "snippets.support.container_orchestration_preload:app"
GEVENT_SERVER = "snippets.support.container_orchestration_gevent"
IN_FLIGHT = 4
SETTLE = 0.5  # seconds between the logged signal and the late request
PORT = re.compile(r"(?:Listening at:|running on) http://127\.0\.0\.1:(\d+)")


def versions() -> str:
    return f"gunicorn {version('gunicorn')}, uvicorn {version('uvicorn')}"


class Server:
    """A server process and its log (both servers log to stderr)."""

    def __init__(
        self, argv: list[str], env: dict[str, str], signal_logged: str | None
    ) -> None:
        # The log line that says it got the signal (None: it logs nothing).
        self.signal_logged = signal_logged
        self.idle_first = False  # signal only once its event loop is idle
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stderr is not None
        self.lines = Lines(self.proc.stderr)

    def expect(self, fragment: str, timeout: float = 15.0) -> str:
        """Wait for the next log line that contains `fragment`."""
        line = self.lines.first(lambda line: fragment in line, timeout)
        if line is None:
            self.kill()
            seen = self.lines.seen
            raise AssertionError(f"no log line with {fragment!r}; saw {seen}")
        return line

    def port(self) -> int:
        line = self.expect("http://127.0.0.1:")
        match = PORT.search(line)
        assert match, line
        return int(match[1])

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until the main thread blocks in ``epoll_wait`` (Linux): an
        event loop with nothing left to run, so no request's code is running
        when a signal arrives."""
        wchan = Path(f"/proc/{self.proc.pid}/wchan")
        deadline = time.monotonic() + timeout
        while wchan.read_text() != "do_epoll_wait":
            if time.monotonic() > deadline:
                raise AssertionError(f"not idle in {timeout} s: {wchan.read_text()}")
            time.sleep(0.01)

    def signal(self, sig: signal.Signals) -> float:
        self.proc.send_signal(sig)
        return time.monotonic()

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL to the whole session: master and workers, like a runtime."""
        kill_session(self.proc)

    def rest(self) -> list[str]:
        """The whole log, once the process has exited."""
        return self.lines.rest()


def _env(gate: Gate, extra: dict[str, str] | None = None) -> dict[str, str]:
    host, port = gate.address
    return {"DEPENDENCY": f"{host}:{port}", "BIND": "127.0.0.1:0", **(extra or {})}


def gunicorn(
    gate: Gate, *options: str, app: str = WSGI_APP, env: dict[str, str] | None = None
) -> Server:
    """gunicorn with the page's configuration file; `options` override it."""
    argv = [sys.executable, "-m", "gunicorn", "-c", CONF, *options, app]
    return Server(argv, _env(gate, env), "Handling signal")


def uvicorn(gate: Gate, *options: str) -> Server:
    argv = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", "0"]
    argv += ["--lifespan", "off", *options, ASGI_APP]
    return Server(argv, _env(gate), "Shutting down")


def gevent_server(gate: Gate, variant: str, drain: float) -> Server:
    """gevent's WSGIServer (``container_orchestration_gevent.py``), one variant."""
    argv = [sys.executable, "-m", GEVENT_SERVER, "--variant", variant]
    logged = None if variant == "naive" else "SIGTERM: stopping"
    server = Server([*argv, "--drain", str(drain)], _env(gate), logged)
    # A signal handler runs in whichever greenlet is running when it arrives:
    # make that the hub, every time.
    server.idle_first = True
    return server


def late_request(port: int) -> Callable[[], str]:
    """Connect and send a request now; the returned function reads the outcome.

    The connection is made before this returns, so it is in the server's
    accept queue (or refused) before anything else happens.
    """
    try:
        conn = socket.create_connection(("127.0.0.1", port), timeout=30)
    except ConnectionRefusedError:
        return lambda: "refused"
    conn.sendall(b"GET /late HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")

    def outcome() -> str:
        with conn:
            try:
                head = conn.recv(12)
            except ConnectionResetError:
                return "dropped"
        return head.decode().split()[1] if head else "dropped"

    return outcome


@dataclass
class Run:
    """What the clients saw and how the server ended."""

    outcomes: list[str]
    late: str | None
    code: int
    seconds: float
    killed_by_deadline: bool
    log: list[str] = field(default_factory=list)

    @property
    def exit(self) -> str:
        text = exit_text(self.code)
        return f"{text} (the deadline's SIGKILL)" if self.killed_by_deadline else text


def shutdown(
    server: Server,
    gate: Gate,
    sig: signal.Signals,
    *,
    release: bool,
    late: bool = False,
    finish: int = 0,
    deadline: float = 15.0,
) -> Run:
    """SIGTERM/SIGQUIT/SIGINT with `IN_FLIGHT` requests held at the gate.

    With `late`, one more request is sent once the server has logged the
    signal (a server that logs nothing gets none). With `release`, the gate
    then answers every held call; with `finish`, that many of them. At
    `deadline` seconds after the signal the whole session gets SIGKILL.
    """
    try:
        port = server.port()
        requests = Requests(port, IN_FLIGHT)
        gate.wait_arrivals(IN_FLIGHT)
        if server.idle_first:
            server.wait_idle()
        sent = server.signal(sig)
        late_outcome = None
        if server.signal_logged is not None:
            server.expect(server.signal_logged)
        if late and server.signal_logged is not None:
            # The one timed wait: no worker logs that it has run its SIGTERM
            # handler, and the master logs the signal just before it forwards
            # it. A request sent too early would be served as before.
            time.sleep(SETTLE)
            late_outcome = late_request(port)
        if release:
            gate.open()
        gate.release(finish)
        killed = False
        try:
            code = server.wait(timeout=max(sent + deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            server.kill()
            code, killed = -signal.SIGKILL, True
        seconds = time.monotonic() - sent
        outcomes = requests.take(IN_FLIGHT, timeout=15)
        return Run(
            outcomes=outcomes,
            late=late_outcome() if late_outcome else None,
            code=code,
            seconds=seconds,
            killed_by_deadline=killed,
            log=server.rest(),
        )
    finally:
        if server.proc.poll() is None:
            server.kill()
        gate.close()


def summary(outcomes: list[str]) -> str:
    """``completed 2, answered 500 1, dropped 1``: what the clients saw."""
    names = {"200": "completed", "500": "answered 500", "503": "answered 503"}
    counts = Counter(outcomes)
    return ", ".join(f"{names.get(k, k)} {counts[k]}" for k in sorted(counts))


@dataclass
class Report:
    """Two ``GET /report`` requests to a one-worker gunicorn (the preload demo)."""

    first: str
    second: str
    worker_timeout: bool
    stuck_in: str
    timeout_line: str = ""  # the master's log line, when a worker timed out


def report(warmup: str, preload: bool, worker_timeout: int = 2) -> Report:
    """Start the preload app, let its slow import finish, request it twice.

    The slow import waits at the gate; the first request is sent while the
    import is under way (or, when the master imports before it listens, just
    after), and the gate opens after that.
    """
    gate = Gate()
    options = ["-k", "sync", "--workers", "1", "--threads", "1"]
    options += ["--timeout", str(worker_timeout)] + (["--preload"] if preload else [])
    server = gunicorn(gate, *options, app=PRELOAD_APP, env={"WARMUP": warmup})
    try:
        gate.wait_arrivals(1)  # the slow import is waiting at the gate
        if preload and warmup == "now":
            gate.open()  # the master imports before it listens, let alone forks
        port = server.port()
        first = late_request(port)
        gate.open()
        outcome = first()
        second = late_request(port)()
        server.signal(signal.SIGTERM)
        server.wait(timeout=15)
        log = server.rest()
    finally:
        if server.proc.poll() is None:
            server.kill()
        gate.close()
    frames = [
        re.sub(r'.*File ".*", line \d+, in (\w+)', r"\1", line).strip()
        for line in log
        if '"<frozen importlib._bootstrap>"' in line
    ]
    return Report(
        first=outcome,
        second=second,
        worker_timeout=any("WORKER TIMEOUT" in line for line in log),
        stuck_in=(frames and "importlib._bootstrap: " + " > ".join(frames)) or "",
        timeout_line=next((line for line in log if "WORKER TIMEOUT" in line), ""),
    )
