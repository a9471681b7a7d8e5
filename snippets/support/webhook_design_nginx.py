"""Run Debian's nginx as a TLS-terminating reverse proxy on loopback.

* `run_nginx` runs any ``nginx.conf`` that way (other pages' proxies use it).
* `serve_nginx` writes the page's ``nginx.conf`` into a temporary prefix with
  this run's ports and a self-signed certificate (made with the ``openssl``
  command for ``hooks.example.com`` and ``127.0.0.1``), starts nginx in the
  foreground (``-p PREFIX -c nginx.conf -g 'daemon off;'``), waits for its
  port, and at the end stops it with SIGQUIT (graceful shutdown) and waits.
* `https_post` sends one request over TLS to 127.0.0.1 with the public
  ``Host`` and returns the status and the first line (or an HTML title);
  `direct_post` sends one straight to the app, past the proxy.

nginx and openssl missing raise `ServiceUnavailable` with the install command.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from snippets.support.services import ServiceUnavailable

__all__ = [
    "PUBLIC_HOST",
    "Nginx",
    "Proxy",
    "direct_post",
    "free_port",
    "https_post",
    "run_nginx",
    "serve_nginx",
]

PUBLIC_HOST = "hooks.example.com"
CONF = Path(__file__).parents[1] / "webhook_design" / "behind_a_proxy" / "nginx.conf"
INSTALL = "install it with: apt-get install -y nginx openssl"
TITLE = re.compile(r"<title>(.*?)</title>")


@dataclass
class Proxy:
    """A running nginx: its HTTPS port, the certificate to trust, and after
    `serve_nginx` has ended, the exit status of its master process."""

    port: int
    cafile: str
    version: str
    error_log: Path
    returncode: int | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def nginx_binary() -> str:
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise ServiceUnavailable(f"nginx is not installed; {INSTALL}")


def _certificate(directory: Path) -> None:
    if shutil.which("openssl") is None:
        raise ServiceUnavailable(f"openssl is not installed; {INSTALL}")
    key, pem = directory / "hooks.key", directory / "hooks.pem"
    san = f"subjectAltName=DNS:{PUBLIC_HOST},IP:127.0.0.1"
    command = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256"
    command += " -nodes -days 1 -keyout KEY -out PEM -subj SUBJECT -addext SAN"
    arguments = {"KEY": str(key), "PEM": str(pem), "SUBJECT": f"/CN={PUBLIC_HOST}"}
    arguments["SAN"] = san
    subprocess.run(
        [arguments.get(word, word) for word in command.split()],
        check=True,
        capture_output=True,
    )


def _config(port: int, upstreams: Mapping[int, int]) -> str:
    """The page's nginx.conf with this run's ports (8443, 8000 and 8001)."""
    text = CONF.read_text().replace("127.0.0.1:8443", f"127.0.0.1:{port}")
    for placeholder, real in upstreams.items():
        text = text.replace(f"127.0.0.1:{placeholder};", f"127.0.0.1:{real};")
    return text


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(500):  # bounded: 5 s
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited: {log.read_text(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            threading.Event().wait(0.01)
    raise RuntimeError("nginx did not open its port within 5 s")


@dataclass
class Nginx:
    """nginx running in the foreground on a temporary prefix."""

    prefix: Path
    process: subprocess.Popen[bytes]
    version: str

    @property
    def error_log(self) -> Path:
        return self.prefix / "logs" / "error.log"


@contextmanager
def run_nginx(
    config: str, port: int, prepare: Callable[[Path], None] | None = None
) -> Iterator[Nginx]:
    """nginx with ``config`` (its ``nginx.conf``) on a temporary prefix, in the
    foreground, once ``port`` accepts; ``prepare(prefix)`` runs before the start.

    At the end, SIGQUIT (graceful shutdown) and a bounded wait."""
    binary = nginx_binary()
    version = subprocess.run(
        [binary, "-v"], capture_output=True, text=True, check=False
    ).stderr.strip()
    with tempfile.TemporaryDirectory(prefix="nginx-") as tmp:
        prefix = Path(tmp)
        prefix.chmod(0o755)  # nginx's workers run as nobody when started as root
        for name in ("logs", "certs", "temp"):
            (prefix / name).mkdir()
        (prefix / "temp").chmod(0o777)
        if prepare is not None:
            prepare(prefix)
        (prefix / "nginx.conf").write_text(config)
        process = subprocess.Popen(
            [binary, "-p", f"{prefix}/", "-c", "nginx.conf", "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for_port(port, process, prefix / "logs" / "error.log")
            yield Nginx(prefix, process, version)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGQUIT)  # graceful shutdown
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@contextmanager
def serve_nginx(flask_port: int, asgi_port: int | None = None) -> Iterator[Proxy]:
    """nginx on 127.0.0.1 (TLS) in front of the apps on ``flask_port``/``asgi_port``."""
    port = free_port()
    upstreams = {8000: flask_port, 8001: asgi_port or flask_port}
    config = _config(port, upstreams)
    proxy: Proxy | None = None
    nginx: Nginx | None = None
    try:
        with run_nginx(config, port, lambda p: _certificate(p / "certs")) as nginx:
            cafile = str(nginx.prefix / "certs" / "hooks.pem")
            proxy = Proxy(port, cafile, nginx.version, nginx.error_log)
            yield proxy
    finally:
        if proxy is not None and nginx is not None:
            proxy.returncode = nginx.process.returncode


def https_post(
    proxy: Proxy, path: str, body: bytes, headers: Mapping[str, str] | None = None
) -> tuple[int, str]:
    """POST over TLS to the proxy as ``https://hooks.example.com``."""
    context = ssl.create_default_context(cafile=proxy.cafile)
    conn = http.client.HTTPSConnection(
        "127.0.0.1", proxy.port, context=context, timeout=10
    )
    return _send(conn, path, body, {"Host": PUBLIC_HOST, **(headers or {})})


def direct_post(
    base: str, path: str, body: bytes, headers: Mapping[str, str] | None = None
) -> tuple[int, str]:
    """POST over plain HTTP straight to an app at ``base``, past the proxy."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    return _send(conn, path, body, headers or {})


def _send(
    conn: http.client.HTTPConnection, path: str, body: bytes, headers: Mapping[str, str]
) -> tuple[int, str]:
    """The status and the first line of the answer, or its HTML title."""
    try:
        sent = {"Content-Type": "application/x-www-form-urlencoded", **headers}
        conn.request("POST", path, body=body, headers=sent)
        response = conn.getresponse()
        text = response.read().decode(errors="replace").strip()
        title = TITLE.search(text)
        first = title[1] if title else (text.splitlines()[0] if text else "")
        return response.status, first
    finally:
        conn.close()
