"""The cases the gunicorn and uvicorn page shows, on real server processes.

    python -m snippets.container_orchestration.gunicorn_uvicorn_shutdown.demo CASE

Cases: ``signals``, ``graceful_timeout``, ``budget``, ``preload``,
``uvicorn``, ``uvicorn_timeout``, ``gevent``, ``gevent_worker``. Requests are
held in flight by a dependency that answers only when the demo releases it (no
sleeps in the handlers).
"""

from __future__ import annotations

import signal
import sys
from importlib.metadata import version

from snippets.container_orchestration.gunicorn_uvicorn_shutdown import drain_budget
from snippets.support.cases import run_cases
from snippets.support.container_orchestration_servers import (
    IN_FLIGHT,
    Run,
    gevent_server,
    gunicorn,
    report,
    shutdown,
    summary,
    uvicorn,
    versions,
)
from snippets.support.container_orchestration_service import Gate

__all__: list[str] = []

WORKERS = {
    "sync": ("-k", "sync", "--workers", str(IN_FLIGHT), "--threads", "1"),
    "gthread": ("-k", "gthread", "--workers", "1", "--threads", str(IN_FLIGHT)),
}
GRACEFUL = 3  # --graceful-timeout for the demo, in seconds
DRAIN = 3  # server.stop(timeout=...) in the gevent cases, in seconds
GEVENT_VARIANTS = {  # gevent_server.py's --variant: handler, pool
    "naive": ("none", "no"),
    "handler": ("gevent.signal_handler", "yes"),
    "no-pool": ("gevent.signal_handler", "no"),
    "signal-module": ("signal.signal", "yes"),
}


def _row(cells: tuple[str, ...], widths: tuple[int, ...]) -> str:
    return "  ".join(f"{c:<{w}}" for c, w in zip(cells, widths, strict=True)).rstrip()


def _ended(run: Run, budget: float) -> str:
    """The exit, and whether it waited for graceful_timeout's SIGKILL.

    Requests that never finish end only at the SIGKILL, which cannot come
    before `budget`; nothing else on this page depends on wall-clock time.
    """
    killed = "dropped" in run.outcomes and run.seconds >= budget
    return f"{run.exit}, at graceful_timeout" if killed else run.exit


def signals() -> list[str]:
    widths = (8, 8, 20, 13, 30)
    lines = [
        f"{versions()}: {IN_FLIGHT} requests in flight, graceful_timeout {GRACEFUL} s",
        _row(("worker", "signal", "in flight", "late request", "master"), widths),
    ]
    for worker, options in WORKERS.items():
        for sig in (signal.SIGTERM, signal.SIGQUIT, signal.SIGINT):
            gate = Gate()
            server = gunicorn(gate, *options, "--graceful-timeout", str(GRACEFUL))
            graceful = sig == signal.SIGTERM  # released only after SIGTERM
            run = shutdown(server, gate, sig, release=graceful, late=graceful)
            cells = (worker, sig.name, summary(run.outcomes), run.late or "-")
            lines.append(_row((*cells, _ended(run, GRACEFUL)), widths))
    return lines


def graceful_timeout() -> list[str]:
    lines = [f"SIGTERM, {IN_FLIGHT} requests that never finish, graceful_timeout 2 s"]
    for worker, options in WORKERS.items():
        gate = Gate()
        server = gunicorn(gate, *options, "--graceful-timeout", "2")
        run = shutdown(server, gate, signal.SIGTERM, release=False)
        lines.append(
            f"{worker}: requests {summary(run.outcomes)}; master {_ended(run, 2)}"
        )
    return lines


def budget() -> list[str]:
    lines = ["grace period  preStop  margin  graceful_timeout"]
    for grace, pre_stop in ((30, 0), (30, 5), (60, 15)):
        value = drain_budget(grace, pre_stop)
        lines.append(f"{grace:>10} s  {pre_stop:>5} s  {5:>4} s  {value:>14} s")
    lines.append(
        "gunicorn's default graceful_timeout: 30 s; with a 5 s preStop, SIGKILL "
        "comes 25 s after SIGTERM"
    )
    return lines


def preload() -> list[str]:
    widths = (7, 10, 36, 14)
    lines = [
        "GET /report imports a module that a warm-up may still be importing",
        _row(("warm-up", "preload", "first request", "second request"), widths),
    ]
    for warmup, preloaded in (("thread", False), ("thread", True), ("now", True)):
        outcome = report(warmup, preloaded)
        first = outcome.first
        if outcome.worker_timeout:
            first += " (worker timeout, 2 s)"
        cells = (warmup, "--preload" if preloaded else "no", first, outcome.second)
        lines.append(_row(cells, widths))
        if outcome.stuck_in:
            lines.append(f"  the worker was stuck in: {outcome.stuck_in}")
    return lines


def uvicorn_sigterm() -> list[str]:
    gate = Gate()
    run = shutdown(uvicorn(gate), gate, signal.SIGTERM, release=True, late=True)
    return [
        f"{versions()}: SIGTERM with {IN_FLIGHT} requests in flight",
        f"in-flight requests: {summary(run.outcomes)}",
        f"request sent after SIGTERM: {run.late}",
        f"process: {run.exit}",
    ]


def uvicorn_timeout() -> list[str]:
    deadline = 2.0  # the demo's stand-in for terminationGracePeriodSeconds
    lines = [
        f"SIGTERM, {IN_FLIGHT} requests that never finish, SIGKILL at {deadline:g} s"
    ]
    for setting in (None, "1"):
        gate = Gate()
        options = ("--timeout-graceful-shutdown", setting) if setting else ()
        server = uvicorn(gate, *options)
        run = shutdown(server, gate, signal.SIGTERM, release=False, deadline=deadline)
        label = (setting and f"{setting} s") or "not set"
        lines.append(
            f"--timeout-graceful-shutdown {label}: requests "
            f"{summary(run.outcomes)}; process {run.exit}"
        )
        cancelled = [line for line in run.log if "Cancel " in line]
        lines += [f"  log: {line}" for line in cancelled]
    return lines


def gevent_sigterm() -> list[str]:
    widths = (21, 4, 27, 12, 17)
    lines = [
        f"gevent {version('gevent')}, pywsgi.WSGIServer: SIGTERM with {IN_FLIGHT} "
        f"requests in flight,",
        f"{IN_FLIGHT - 1} finish after it, 1 never does; "
        f"the handler calls server.stop(timeout={DRAIN})",
        _row(("handler", "pool", "in flight", "late request", "process"), widths),
    ]
    errors: dict[str, str] = {}  # the exceptions each handler's process printed
    for variant, (handler, pool) in GEVENT_VARIANTS.items():
        gate = Gate()
        server = gevent_server(gate, variant, DRAIN)
        run = shutdown(server, gate, signal.SIGTERM, release=False, late=True, finish=3)
        cells = (handler, pool, summary(run.outcomes), run.late or "-", run.exit)
        lines.append(_row(cells, widths))
        for line in run.log:
            if line.startswith("gevent.exceptions."):
                errors[line] = handler
    for line, handler in errors.items():
        lines += [f"the process with {handler} printed:", f"  {line}"]
    return lines


def gevent_worker() -> list[str]:
    lines = [
        f"gunicorn {version('gunicorn')} -k gevent, 1 worker, "
        f"graceful_timeout {GRACEFUL} s:",
        f"SIGTERM with {IN_FLIGHT} requests in flight",
    ]
    for release, label in ((True, "that finish"), (False, "that never finish")):
        gate = Gate()
        options = ("-k", "gevent", "--workers", "1")
        server = gunicorn(gate, *options, "--graceful-timeout", str(GRACEFUL))
        run = shutdown(server, gate, signal.SIGTERM, release=release)
        lines.append(
            f"requests {label}: {summary(run.outcomes)}; master {_ended(run, GRACEFUL)}"
        )
    return lines


if __name__ == "__main__":
    sys.exit(
        run_cases(
            {
                "signals": signals,
                "graceful_timeout": graceful_timeout,
                "budget": budget,
                "preload": preload,
                "uvicorn": uvicorn_sigterm,
                "uvicorn_timeout": uvicorn_timeout,
                "gevent": gevent_sigterm,
                "gevent_worker": gevent_worker,
            }
        )
    )
