"""The graceful-shutdown service as a real process, a dependency that answers on
command, clients, and PID 1 in a new PID namespace.

`Gate` is a TCP dependency that answers only when released, so a demo or test
holds exactly N requests in flight when it sends SIGTERM. `Service` runs
``python -m snippets.container_orchestration.graceful_shutdown`` and reads its
output line by line. `run_as_pid1` starts a command as PID 1 of a new PID
namespace with ``unshare --pid --fork --mount-proc`` and sends SIGTERM to it.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from snippets.support.processes import Lines
from snippets.support.services import ServiceUnavailable

__all__ = [
    "DOCKERFILE",
    "IN_FLIGHT",
    "KILL_DEADLINE",
    "MODULE",
    "PID1_CASES",
    "Gate",
    "Requests",
    "Service",
    "acks",
    "connect",
    "dockerfile_command",
    "exit_text",
    "get",
    "pid1_command",
    "run_as_pid1",
    "send_jobs",
    "summary",
]

MODULE = "snippets.container_orchestration.graceful_shutdown"
CHILDREN = "snippets.support.container_orchestration_children"
ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "snippets" / "container_orchestration" / "manifests"
DOCKERFILE = MANIFESTS / "graceful-shutdown.Dockerfile"
DEPLOYMENT = MANIFESTS / "graceful-shutdown.deployment.yaml"
IN_FLIGHT = 5
KILL_DEADLINE = 3.0  # the test's stand-in for terminationGracePeriodSeconds


class Gate:
    """A TCP dependency: reads one line per connection, answers when released."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = self._listener.getsockname()[:2]
        self._changed = threading.Condition()
        self.arrived: list[str] = []
        self._permits = threading.Semaphore(0)
        self._open = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as lines:
            item = lines.readline().decode().strip()
            with self._changed:
                self.arrived.append(item)
                self._changed.notify_all()
            while not self._open.is_set():
                if self._permits.acquire(timeout=0.1):
                    break
            try:
                conn.sendall(f"done {item}\n".encode())
            except OSError:
                pass  # the service gave up on this call (cancelled or killed)

    def wait_arrivals(self, count: int, timeout: float = 10.0) -> None:
        with self._changed:
            assert self._changed.wait_for(
                lambda: len(self.arrived) >= count, timeout
            ), f"only {len(self.arrived)} of {count} calls reached the dependency"

    def release(self, count: int) -> None:
        for _ in range(count):
            self._permits.release()

    def open(self) -> None:
        self._open.set()

    def close(self) -> None:
        self._open.set()
        self._listener.close()


class Service:
    """The demo service as a child process, with its stdout read line by line."""

    def __init__(self, argv: list[str], stdin: int | None = None) -> None:
        # faulthandler: SIGABRT prints every thread's stack (`stacks`).
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"}
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.lines = Lines(self.proc.stdout)

    @classmethod
    def start(cls, *args: str, gate: Gate | None = None) -> Service:
        argv = [sys.executable, "-m", MODULE, *args]
        if gate is not None:
            argv += ["--dependency", f"{gate.address[0]}:{gate.address[1]}"]
        stdin = subprocess.PIPE if args[0] == "pool" else None
        return cls(argv, stdin)

    @property
    def seen(self) -> list[str]:
        return self.lines.seen

    def expect(self, prefix: str, timeout: float = 10.0) -> str:
        """Wait for the next line that starts with `prefix` and return it."""
        line = self.lines.first(lambda line: line.startswith(prefix), timeout)
        if line is None:
            self.kill()
            raise AssertionError(
                f"no line starting with {prefix!r}; saw {self.seen}; "
                f"stderr: {self.stderr()}"
            )
        return line

    def rest(self) -> list[str]:
        """Every line so far and to the end of the output (after the exit)."""
        return list(self.lines.rest())

    def port(self) -> int:
        line = self.expect("listening on port ")
        return int(line.split()[3].rstrip(","))

    def signal(self, sig: signal.Signals) -> float:
        self.proc.send_signal(sig)
        return time.monotonic()

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def stacks(self) -> str:
        """Abort a process that hangs; what it was doing (every thread's stack)."""
        self.proc.send_signal(signal.SIGABRT)
        self.proc.wait(timeout=5)
        return self.stderr()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return "(still running)"
        return self.proc.stderr.read()


def get(port: int, path: str, timeout: float = 20.0) -> str:
    """One request; the outcome as a status code or what went wrong."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return str(response.status)
    except ConnectionRefusedError:
        return "refused"
    except (
        ConnectionResetError,
        http.client.RemoteDisconnected,
        http.client.IncompleteRead,  # the connection closed inside the body
    ):
        return "dropped"
    finally:
        conn.close()


class Requests:
    """`count` requests sent at once, each in its own thread."""

    def __init__(self, port: int, count: int) -> None:
        self.outcomes: queue.Queue[str] = queue.Queue()
        for n in range(1, count + 1):
            threading.Thread(
                target=lambda path=f"/r{n}": self.outcomes.put(get(port, path)),
                daemon=True,
            ).start()

    def take(self, count: int, timeout: float = 10.0) -> list[str]:
        return [self.outcomes.get(timeout=timeout) for _ in range(count)]


def connect(port: int) -> str:
    """Whether a new connection is accepted or refused."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return "accepted"
    except ConnectionRefusedError:
        return "refused"


def summary(outcomes: list[str]) -> str:
    counts = Counter(outcomes)
    names = {"200": "completed", "503": "answered 503", "dropped": "dropped"}
    return ", ".join(f"{names.get(k, k)} {counts[k]}" for k in sorted(counts))


def exit_text(code: int) -> str:
    return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit {code}"


def send_jobs(service: Service, *jobs: str) -> None:
    assert service.proc.stdin is not None
    service.proc.stdin.write("".join(f"{job}\n" for job in jobs))
    service.proc.stdin.flush()


def acks(lines: list[str], kind: str) -> list[str]:
    return sorted(line.split()[1] for line in lines if line.startswith(f"{kind} "))


def dockerfile_command() -> tuple[list[str], list[str]]:
    """ENTRYPOINT and CMD of the Dockerfile, both in exec form (JSON arrays)."""
    argv: dict[str, list[str]] = {}
    for line in DOCKERFILE.read_text().splitlines():
        keyword, _, rest = line.partition(" ")
        if keyword in ("ENTRYPOINT", "CMD"):
            argv[keyword] = json.loads(rest)
    return argv["ENTRYPOINT"], argv["CMD"]


def children(pid: int) -> list[int]:
    """Process ids whose parent is `pid`, as this (the parent) namespace sees them."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


PID1_CASES = (
    "exec form, no handler",
    "shell form, handler",
    "shell form with exec, handler",
    "exec form, handler",
    "tini in front, handler",
)


def pid1_command(case: str) -> list[str]:
    """What the container runtime would start, run on this machine's Python.

    The last case is the image's own ENTRYPOINT and CMD; the others drop its
    init to show what Python alone, or a shell, does as PID 1.
    """
    entrypoint, cmd = dockerfile_command()
    if not case.startswith("tini"):
        entrypoint = entrypoint[entrypoint.index("python") :]
    if case == "exec form, no handler":
        cmd = [*cmd, "--variant", "naive"]
    tini = shutil.which("tini")
    if case.startswith("tini") and tini is None:
        raise ServiceUnavailable("tini is not installed: apt-get install tini")
    local = {
        "python": sys.executable,
        "tini": str(tini),
        "0.0.0.0": "127.0.0.1",
        "8080": "0",
    }
    command = [local.get(arg, arg) for arg in entrypoint + cmd]
    if case.startswith("shell form"):  # what `CMD python -m ...` turns into
        prefix = "exec " if "exec" in case else ""
        return ["/bin/sh", "-c", prefix + shlex.join(command)]
    return command


def run_as_pid1(case: str) -> tuple[int, int | None]:
    """Start `case` in a new PID namespace, SIGTERM its PID 1; (app pid, status)."""
    argv = ["unshare", "--pid", "--fork", "--mount-proc", *pid1_command(case)]
    service = Service(argv)
    try:
        try:
            line = service.expect("listening on port ", timeout=10)
        except AssertionError:
            stderr = service.stderr()
            if "unshare" in stderr:
                raise ServiceUnavailable(f"no new PID namespace: {stderr}") from None
            raise
        app_pid = int(line.rsplit(" ", 1)[1])  # its PID inside the namespace
        (init,) = children(service.proc.pid)  # the namespace's PID 1, seen from here
        os.kill(init, signal.SIGTERM)  # what the container runtime sends
        try:
            return app_pid, service.wait(timeout=1.5)
        except subprocess.TimeoutExpired:
            os.kill(
                init, signal.SIGKILL
            )  # forcibly delivered from the parent namespace
            service.wait(timeout=5)
            return app_pid, None
    finally:
        service.kill()
