"""`make serve` answers: the live-reload server serves the pages at the root."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request

from tests.conftest import ROOT
from tools.loopback import free_port


def test_make_serve_answers_on_its_port() -> None:
    port = free_port()
    env = {**os.environ, "PORT": str(port)}
    server = subprocess.Popen(
        ["make", "--no-print-directory", "serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/lazy-loading/thread-safe-lazy-init/"
    try:
        deadline = time.monotonic() + 60
        status, body = 0, b""
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    status, body = response.status, response.read()
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.25)
        assert status == 200, f"make serve did not answer on {url}"
        assert b"Thread-safe lazy initialization" in body
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=10)
