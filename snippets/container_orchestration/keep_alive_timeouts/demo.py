"""The cases the keep-alive page shows, on real nginx, gunicorn and uvicorn.

    python -m snippets.container_orchestration.keep_alive_timeouts.demo CASE

Cases: ``race`` (a request that reaches nginx as the app closes the idle
upstream connection, with the app's timeout shorter and longer than
nginx's), ``retry`` (``proxy_next_upstream ... non_idempotent`` and a POST
counter), ``budget`` (the defaults, and a chain of hops checked).
"""

from __future__ import annotations

import http.client
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

from snippets.container_orchestration.keep_alive_timeouts import Hop, hop_problems
from snippets.support.cases import run_cases
from snippets.support.container_orchestration_keepalive import (
    app_server,
    nginx_version,
    orders,
    proxy,
    race,
    request,
    versions,
)

__all__: list[str] = []

SHORT, LONG = 1, 5  # app keep-alive in the broken and the fixed setup, seconds
WIDTHS = (9, 4, 6, 7, 10, 6, 6)
HEADER = ("server", "app", "nginx", "request", "FIN first", "status", "orders")


def _row(*cells: str) -> str:
    return "  ".join(f"{c:<{w}}" for c, w in zip(cells, WIDTHS, strict=True)).rstrip()


def race_rows(server: str, keep_alive: int, nginx_timeout: str) -> list[str]:
    """One app and one nginx; a POST race, then (broken setup only) a GET race."""
    rows = []
    methods = ["POST", "GET"] if keep_alive == SHORT else ["POST"]
    with tempfile.TemporaryDirectory() as tmp:
        counter = Path(tmp) / "orders"
        with (
            app_server(server, keep_alive, counter) as app,
            proxy([app.port], keepalive_timeout=nginx_timeout) as nginx,
        ):
            for method in methods:
                outcome = race(nginx, app, method)
                counted = f"{outcome.placed} of 2" if method == "POST" else "-"
                closed = "yes" if outcome.app_closed_first else "no"
                cells = (server, f"{keep_alive} s", nginx_timeout, method, closed)
                rows.append(_row(*cells, outcome.status, counted))
    return rows


def show_race() -> list[str]:
    lines = [
        f"nginx {nginx_version()}, {versions()}: two requests on one client",
        "connection; the second reaches nginx as the app closes the idle upstream",
        "connection (or would have, with the longer keep-alive). app: the app's",
        "keep-alive timeout; nginx: upstream keepalive_timeout; FIN first: the",
        "app's FIN reached nginx before nginx sent the request on the connection",
        "",
        _row(*HEADER),
    ]
    for server in ("gunicorn", "uvicorn"):
        lines += race_rows(server, SHORT, "60s")
        lines += race_rows(server, LONG, "1s")
    return lines


RULES = {
    "/orders": "error timeout (default)",
    "/retried/orders": "error timeout non_idempotent",
}
RETRY = "{:<29}  {:<30}  {:<6}  {}"


def show_retry() -> list[str]:
    """The default retry rule and non_idempotent, for two kinds of failure."""
    lines = [RETRY.format("proxy_next_upstream", "failure", "status", "orders")]
    with tempfile.TemporaryDirectory() as tmp:
        counter = Path(tmp) / "orders"
        with app_server("uvicorn", SHORT, counter) as app:
            for path, rule in RULES.items():
                with proxy([app.port]) as nginx:
                    outcome = race(nginx, app, "POST", path)
                    placed = f"{outcome.placed} for 2 POSTs"
                    failure = "the app closed the connection"
                    lines.append(RETRY.format(rule, failure, outcome.status, placed))
        counter.unlink()
        with (
            app_server("uvicorn", LONG, counter, hold=2) as first,
            app_server("uvicorn", LONG, counter, hold=2) as second,
        ):
            for path, rule in RULES.items():
                with proxy([first.port, second.port], read_timeout="1s") as nginx:
                    before = orders(counter)
                    conn = http.client.HTTPConnection("127.0.0.1", nginx.port)
                    status = request(conn, "POST", path)
                    conn.close()
                    placed = f"{orders(counter) - before} for 1 POST"
                    failure = "slower than proxy_read_timeout"
                    lines.append(RETRY.format(rule, failure, status, placed))
    return lines


def show_budget() -> list[str]:
    from gunicorn.config import Keepalive  # type: ignore[import-untyped]
    from uvicorn.config import Config

    default = Config(app="apps:app").timeout_keep_alive
    lines = [
        f"gunicorn {version('gunicorn')} keepalive default: {Keepalive.default} s",
        f"uvicorn {version('uvicorn')} --timeout-keep-alive default: {default} s",
        "nginx upstream keepalive_timeout default: 60 s (nginx documentation)",
        "AWS ALB idle timeout default: 60 s (AWS documentation)",
        "",
    ]
    for label, app_idle in (("defaults", float(Keepalive.default)), ("fixed", 75.0)):
        hops = [
            Hop("AWS ALB", 60, "nginx", 75),  # nginx's client keepalive_timeout
            Hop("nginx", 60, "gunicorn", app_idle),
        ]
        lines.append(f"{label}:")
        lines += [f"  {problem}" for problem in hop_problems(hops)] or ["  no problems"]
    return lines


if __name__ == "__main__":
    sys.exit(run_cases({"race": show_race, "retry": show_retry, "budget": show_budget}))
