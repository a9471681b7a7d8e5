"""nginx in front of gunicorn or uvicorn on loopback, and the keep-alive race.

* `app_server` starts gunicorn (gthread) or uvicorn with a keep-alive timeout
  and the page's app (snippets/container_orchestration/keep_alive_timeouts/).
* `proxy` runs the page's ``nginx.conf`` (with `run_nginx` from
  webhook_design_nginx) with this run's ports and shorter timeouts.
* `race` sends a request through nginx at the moment the app closes the idle
  upstream connection: it stops nginx's worker (SIGSTOP), sends the request
  (it waits in nginx's socket), waits until the kernel shows the app's FIN on
  nginx's upstream connection (state CLOSE_WAIT in /proc/net/tcp), and lets
  the worker go on (SIGCONT). The worker then finds the client's request
  ready before the FIN, as it does when the two cross on a network. An
  attempt in which the FIN came first (this process held up for longer than
  the app's keep-alive) is seen in /proc/net/tcp too, and made again.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

from snippets.support.container_orchestration_servers import Server
from snippets.support.processes import kill_session
from snippets.support.webhook_design_nginx import (
    Nginx,
    free_port,
    nginx_binary,
    run_nginx,
)

__all__ = [
    "GUNICORN_CONF",
    "ROOT",
    "App",
    "Outcome",
    "Proxy",
    "app_server",
    "nginx_config",
    "nginx_connections",
    "nginx_version",
    "orders",
    "proxy",
    "race",
    "request",
    "upstream_lines",
    "versions",
    "wait_until",
]

PACKAGE = "snippets.container_orchestration.keep_alive_timeouts"
ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "snippets" / "container_orchestration"
CONF = PAGE / "keep_alive_timeouts" / "nginx.conf"
GUNICORN_CONF = f"{PACKAGE.replace('.', '/')}/gunicorn_conf.py"
ESTABLISHED, CLOSE_WAIT = "01", "08"  # states in /proc/net/tcp
TITLE = re.compile(r"<title>(.*?)</title>")


def nginx_version() -> str:
    """``1.22.1``: what ``nginx -v`` prints, without its prefix."""
    done = subprocess.run([nginx_binary(), "-v"], capture_output=True, text=True)
    return done.stderr.strip().rpartition("/")[2]


def versions() -> str:
    return f"gunicorn {version('gunicorn')}, uvicorn {version('uvicorn')}"


@dataclass
class App:
    name: str  # "gunicorn" or "uvicorn"
    keep_alive: int
    port: int
    server: Server
    orders: Path


@contextmanager
def app_server(
    name: str, keep_alive: int, orders: Path, hold: float = 0
) -> Iterator[App]:
    """gunicorn (one gthread worker, ``--keep-alive``) or uvicorn
    (``--timeout-keep-alive``) on a free loopback port."""
    env = {"ORDERS": str(orders), "HOLD": str(hold)}
    if name == "gunicorn":
        argv = [sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONF]
        argv += ["--workers", "1", "--bind", "127.0.0.1:0"]
        argv += ["--keep-alive", str(keep_alive), f"{PACKAGE}.apps:app"]
    else:
        argv = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port"]
        argv += ["0", "--lifespan", "off", "--timeout-keep-alive", str(keep_alive)]
        argv += [f"{PACKAGE}.apps:asgi_app"]
    server = Server(argv, env, "Shutting down")
    try:
        yield App(name, keep_alive, server.port(), server, orders)
    finally:
        kill_session(server.proc)


def nginx_config(
    port: int,
    upstreams: Sequence[int],
    keepalive_timeout: str = "60s",
    read_timeout: str = "60s",
) -> str:
    """The page's nginx.conf with this run's ports and timeouts."""
    text = CONF.read_text().replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    servers = "".join(f"server 127.0.0.1:{p};\n        " for p in upstreams)
    text = text.replace("server 127.0.0.1:8000;\n        ", servers)
    text = text.replace(
        "keepalive_timeout 60s;", f"keepalive_timeout {keepalive_timeout};"
    )
    return text.replace(
        "proxy_read_timeout 60s;", f"proxy_read_timeout {read_timeout};"
    )


@dataclass
class Proxy:
    port: int
    nginx: Nginx

    @property
    def version(self) -> str:
        return self.nginx.version.removeprefix("nginx version: ")

    def worker(self) -> int:
        """The pid of nginx's one worker process."""
        pid = self.nginx.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        assert len(children) == 1, children
        return int(children[0])


@contextmanager
def proxy(upstreams: Sequence[int], **timeouts: str) -> Iterator[Proxy]:
    port = free_port()
    with run_nginx(nginx_config(port, upstreams, **timeouts), port) as nginx:
        yield Proxy(port, nginx)


def request(conn: http.client.HTTPConnection, method: str, path: str) -> str:
    """Send one request on a kept-alive client connection; the status."""
    body = b"item=1" if method == "POST" else None
    conn.request(method, path, body=body)
    response = conn.getresponse()
    response.read()
    return str(response.status)


def orders(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def nginx_connections(port: int, state: str = ESTABLISHED) -> int:
    """nginx's connections to 127.0.0.1:``port`` in ``state``."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, st = fields[2], fields[3]
        if remote == f"0100007F:{port:04X}" and st == state:
            count += 1
    return count


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll ``condition`` every 10 ms for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def _stopped(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rpartition(")")[2].split()[0] == "T"


@dataclass
class Outcome:
    status: str  # what the client got for the second request
    app_closed_first: bool  # the app's FIN was there before nginx sent it
    placed: int = 0  # orders the app recorded for the two requests
    title: str = ""  # the HTML title of nginx's error page, if any
    log: list[str] = field(default_factory=list)  # its upstream error lines
    attempts: int = 1  # 2 or more when the FIN came first and it was redone


class _FinTooEarly(Exception):
    """The app's FIN reached nginx before the second request did."""


def race(
    proxy: Proxy,
    app: App,
    method: str,
    path: str = "/orders",
    wait: float = 2.5,
    attempts: int = 5,
    first_pause: float = 0,
) -> Outcome:
    """Two requests on one client connection; the second one reaches nginx
    when the app closes the idle upstream connection left by the first.

    Waits up to ``wait`` seconds for the app's FIN (it never comes when the
    app's keep-alive timeout is longer than that). The order must be request
    first, FIN second: if this process was too slow (a loaded machine can
    hold it for longer than the app's 1 s keep-alive between the first
    response and the second request), the FIN came first, and the attempt is
    made again, up to ``attempts`` times. ``first_pause`` (seconds between
    the first response and the second request, first attempt only) stands
    for such a slow client in a test."""
    for attempt in range(1, attempts + 1):
        pause = first_pause if attempt == 1 else 0
        try:
            outcome = _race_once(proxy, app, method, path, wait, pause)
        except _FinTooEarly:
            continue
        outcome.attempts = attempt
        return outcome
    raise AssertionError(f"the app's FIN came first {attempts} times")


def _race_once(
    proxy: Proxy, app: App, method: str, path: str, wait: float, pause: float
) -> Outcome:
    before, logged = orders(app.orders), len(upstream_lines(proxy))
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    try:
        first = request(conn, method, path)
        assert first == "200", first
        time.sleep(pause)
        worker = proxy.worker()
        os.kill(worker, signal.SIGSTOP)
        try:
            assert wait_until(lambda: _stopped(worker), 5), "the worker did not stop"
            idle = nginx_connections(app.port, ESTABLISHED)
            if not idle or nginx_connections(app.port, CLOSE_WAIT):
                raise _FinTooEarly  # closed already, nothing sent: try again
            body = b"item=2" if method == "POST" else None
            conn.request(method, path, body=body)  # waits in nginx's socket
            # On loopback the request is in nginx's socket when send returns;
            # a FIN seen now may have come before it (or just after: either
            # way the order is not certain).
            too_early = nginx_connections(app.port, CLOSE_WAIT) > 0

            # Every idle connection nginx holds to the app closed by the app: an
            # older one (a probe's) may close first while the newest, the one
            # nginx reuses first, is still open.
            def fin() -> bool:
                return (
                    nginx_connections(app.port, CLOSE_WAIT) > 0
                    and nginx_connections(app.port, ESTABLISHED) == 0
                )

            closed = too_early or wait_until(fin, wait)
        finally:
            os.kill(worker, signal.SIGCONT)
        response = conn.getresponse()
        text = response.read().decode(errors="replace")
        if too_early:
            raise _FinTooEarly
        title = TITLE.search(text)
        return Outcome(
            str(response.status),
            closed,
            placed=orders(app.orders) - before,
            title=title[1] if title else "",
            log=upstream_lines(proxy)[logged:],
        )
    finally:
        conn.close()


def upstream_lines(proxy: Proxy) -> list[str]:
    """The error log's lines about upstreams."""
    text = proxy.nginx.error_log.read_text(errors="replace")
    return [line for line in text.splitlines() if "upstream" in line]
