"""Tests for snippets/container_orchestration/keep_alive_timeouts.

Debian's nginx (its own process on a temporary prefix) in front of real
gunicorn (gthread) and uvicorn processes on 127.0.0.1. The race is made
certain, not likely: nginx's worker is stopped while the client's request
reaches it and the app's FIN reaches nginx's upstream connection, in that
order, and then let go (snippets/support/container_orchestration_keepalive.py).
"""

from __future__ import annotations

import http.client
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import uvicorn
from gunicorn.config import Config  # type: ignore[import-untyped]

from snippets.container_orchestration.keep_alive_timeouts import (
    Hop,
    app_keep_alive,
    hop_problems,
)
from snippets.support.container_orchestration_keepalive import (
    GUNICORN_CONF,
    ROOT,
    App,
    Proxy,
    app_server,
    nginx_connections,
    nginx_version,
    orders,
    proxy,
    race,
    request,
    upstream_lines,
    wait_until,
)
from snippets.support.services import ServiceUnavailable
from tests.conftest import unavailable
from tools.errors import ErrorRecorder

SERVERS = ["gunicorn", "uvicorn"]
APP = "snippets.container_orchestration.keep_alive_timeouts.apps:app"
PREMATURE = "upstream prematurely closed connection while reading response header"


@pytest.fixture(autouse=True)
def nginx() -> None:
    try:
        nginx_version()
    except ServiceUnavailable as error:
        unavailable("nginx", str(error))


# --------------------------------------------------------------------------- #
# The defaults and the budget
# --------------------------------------------------------------------------- #


def test_defaults_of_the_installed_servers() -> None:
    assert Config().keepalive == 2  # gunicorn --keep-alive
    assert uvicorn.Config(app="apps:app").timeout_keep_alive == 5


def test_the_page_gunicorn_conf_keeps_idle_connections_75_s() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONF, "--print-config", APP],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    settings = dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition("=") for line in printed.splitlines())
    )
    assert settings["keepalive"] == "75"
    assert settings["worker_class"] == "gthread"


def test_budget_flags_an_app_that_closes_first() -> None:
    assert app_keep_alive(60) == 65
    chain = [Hop("AWS ALB", 60, "nginx", 75), Hop("nginx", 60, "gunicorn", 2)]
    (problem,) = hop_problems(chain)
    assert problem.startswith("nginx -> gunicorn: gunicorn closes idle")
    assert hop_problems([Hop("nginx", 60, "uvicorn", 65)]) == []
    assert hop_problems([Hop("nginx", 60, "uvicorn", 60)])  # equal is a race


# --------------------------------------------------------------------------- #
# The hazard: the app's keep-alive is shorter than nginx's
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("server", SERVERS)
def test_post_on_a_connection_the_app_closed_gets_502(
    tmp_path: Path, server: str, error_record: ErrorRecorder
) -> None:
    counter = tmp_path / "orders"
    with (
        app_server(server, 1, counter) as app,
        proxy([app.port], keepalive_timeout="60s") as nginx,
    ):
        post = race(nginx, app, "POST")
        assert (post.status, post.app_closed_first) == ("502", True)
        assert post.placed == 1  # the second POST never reached the app
        (line,) = post.log
        assert PREMATURE in line and '"POST /orders HTTP/1.1"' in line
        get = race(nginx, app, "GET")
        # A GET is retried once on a new connection: nginx counts an error on
        # a cached connection as a free try; a POST would need non_idempotent.
        assert (get.status, get.app_closed_first) == ("200", True)
        assert [PREMATURE in line for line in get.log] == [True]
    version = nginx.version.rpartition("/")[2]
    error_record(line, id="premature-close", component="nginx", version=version)
    error_record(post.title, id="bad-gateway", component="nginx", version=version)


def test_a_race_whose_fin_came_first_is_made_again(tmp_path: Path) -> None:
    """A client slower than the app's 1 s keep-alive sends its second request
    after the FIN: nginx has closed the idle connection and would open a new
    one (200, both orders). That attempt proves nothing and is redone."""
    counter = tmp_path / "orders"
    with (
        app_server("uvicorn", 1, counter) as app,
        proxy([app.port], keepalive_timeout="60s") as nginx,
    ):
        post = race(nginx, app, "POST", first_pause=2.5)
        assert post.attempts == 2
        assert (post.status, post.app_closed_first, post.placed) == ("502", True, 1)
        assert orders(counter) == 1 + 1  # the first attempt sent one POST


# --------------------------------------------------------------------------- #
# The fix: the app keeps idle connections longer than nginx
# --------------------------------------------------------------------------- #


def burst(nginx: Proxy, clients: int, each: int) -> list[str]:
    """``clients`` kept-alive client connections, ``each`` POSTs on each."""

    def one_client(_: int) -> list[str]:
        conn = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=30)
        try:
            return [request(conn, "POST", "/orders") for _ in range(each)]
        finally:
            conn.close()

    with ThreadPoolExecutor(clients) as pool:
        return [
            status for got in pool.map(one_client, range(clients)) for status in got
        ]


def all_closed_by_nginx(app: App) -> bool:
    """nginx's keepalive_timeout closed its idle connections to the app."""
    return wait_until(lambda: nginx_connections(app.port) == 0, timeout=10)


@pytest.mark.parametrize("server", SERVERS)
def test_longer_app_keep_alive_holds_over_many_requests(
    tmp_path: Path, server: str
) -> None:
    counter = tmp_path / "orders"
    with (
        app_server(server, 5, counter) as app,
        proxy([app.port], keepalive_timeout="1s") as nginx,
    ):
        post = race(nginx, app, "POST")
        assert (post.status, post.app_closed_first, post.placed) == ("200", False, 2)
        before = orders(counter)
        statuses = []
        for _ in range(2):  # idle connections closed by nginx, then reopened
            assert all_closed_by_nginx(app)
            statuses += burst(nginx, clients=4, each=10)
        assert statuses == ["200"] * 80
        assert orders(counter) - before == 80
        assert upstream_lines(nginx) == []


# --------------------------------------------------------------------------- #
# The risky alternative: proxy_next_upstream ... non_idempotent
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("path", "placed"),
    [("/orders", 1), ("/retried/orders", 2)],
    ids=["default", "non_idempotent"],
)
def test_non_idempotent_sends_a_slow_post_to_a_second_replica(
    tmp_path: Path, path: str, placed: int, error_record: ErrorRecorder
) -> None:
    counter = tmp_path / "orders"
    with (
        app_server("uvicorn", 5, counter, hold=2) as first,
        app_server("uvicorn", 5, counter, hold=2) as second,
        proxy([first.port, second.port], read_timeout="1s") as nginx,
    ):
        conn = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=30)
        assert request(conn, "POST", path) == "504"
        conn.close()
        assert orders(counter) == placed  # one POST from the client
        timed_out = [line for line in upstream_lines(nginx) if "timed out" in line]
        assert len(timed_out) == placed
    if path == "/retried/orders":
        version = nginx.version.rpartition("/")[2]
        error_record(
            timed_out[0],
            id="upstream-timed-out",
            component="nginx",
            version=version,
            section="non-idempotent",
        )


def test_non_idempotent_retries_a_post_the_app_never_read(tmp_path: Path) -> None:
    counter = tmp_path / "orders"
    with (
        app_server("uvicorn", 1, counter) as app,
        proxy([app.port]) as nginx,
    ):
        post = race(nginx, app, "POST", "/retried/orders")
        assert (post.status, post.app_closed_first) == ("200", True)
        assert post.placed == 2  # each POST once: the app never read the first try
