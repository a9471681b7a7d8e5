"""Tests for snippets/container_orchestration/gunicorn_uvicorn_shutdown.

Real gunicorn, uvicorn and gevent server processes on 127.0.0.1 receive real
signals while requests are held in flight by a dependency that answers only
when the test releases it. The clients count what completed, what got an
error answer and what was dropped; the deadline's SIGKILL goes to the whole
process group, as a container runtime's does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import gevent
import gevent.signal
import gunicorn as gunicorn_package  # type: ignore[import-untyped]
import pytest
import uvicorn
from gevent.baseserver import BaseServer
from gevent.hub import signal as gevent_signal_handler
from gunicorn.config import Config  # type: ignore[import-untyped]

from snippets.container_orchestration.gunicorn_uvicorn_shutdown import (
    KUBERNETES_GRACE_SECONDS,
    drain_budget,
)
from snippets.support.container_orchestration_servers import (
    CONF,
    IN_FLIGHT,
    ROOT,
    WSGI_APP,
    gevent_server,
    gunicorn,
    report,
    shutdown,
)
from snippets.support.container_orchestration_servers import (
    uvicorn as uvicorn_server,
)
from snippets.support.container_orchestration_service import Gate, Requests
from tools.errors import ErrorRecorder

WORKERS = {
    "sync": ("-k", "sync", "--workers", str(IN_FLIGHT), "--threads", "1"),
    "gthread": ("-k", "gthread", "--workers", "1", "--threads", str(IN_FLIGHT)),
}
GRACEFUL = 3


# --------------------------------------------------------------------------- #
# The defaults, read from the installed servers
# --------------------------------------------------------------------------- #


def test_gunicorn_graceful_timeout_defaults_to_the_kubernetes_grace_period() -> None:
    config = Config()
    assert config.graceful_timeout == 30 == KUBERNETES_GRACE_SECONDS
    assert config.preload_app is False


def test_uvicorn_waits_without_a_limit_by_default() -> None:
    assert uvicorn.Config(app=WSGI_APP).timeout_graceful_shutdown is None


def test_drain_budget_leaves_the_pre_stop_and_a_margin() -> None:
    assert drain_budget() == 25
    assert drain_budget(30, 5) == 20
    with pytest.raises(ValueError, match="leaves no time to drain"):
        drain_budget(10, 5)


def test_the_configuration_file_resolves_in_gunicorn() -> None:
    env = {**os.environ, "BIND": "127.0.0.1:0", "PRE_STOP_SECONDS": "5"}
    printed = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", CONF, "--print-config", WSGI_APP],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    settings = dict(
        (name.strip(), value.strip())
        for name, _, value in (line.partition("=") for line in printed.splitlines())
    )
    assert settings["graceful_timeout"] == "20"
    assert settings["preload_app"] == "False"
    assert settings["worker_class"] == "gthread"
    assert settings["control_socket_disable"] == "True"


# --------------------------------------------------------------------------- #
# gunicorn: SIGTERM drains, SIGQUIT and SIGINT do not
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("worker", WORKERS)
def test_sigterm_finishes_in_flight_and_drops_a_late_request(worker: str) -> None:
    gate = Gate()
    server = gunicorn(gate, *WORKERS[worker], "--graceful-timeout", str(GRACEFUL))
    run = shutdown(server, gate, signal.SIGTERM, release=True, late=True)
    assert run.outcomes == ["200"] * IN_FLIGHT
    # Workers keep the listening socket open until they exit: the kernel
    # accepts the late connection, and nobody ever reads it.
    assert run.late == "dropped"
    assert run.code == 0 and not run.killed_by_deadline
    assert "late" not in gate.arrived


@pytest.mark.parametrize("sig", [signal.SIGQUIT, signal.SIGINT], ids=lambda s: s.name)
def test_quick_shutdown_of_sync_workers_answers_500(sig: signal.Signals) -> None:
    gate = Gate()
    server = gunicorn(gate, *WORKERS["sync"], "--graceful-timeout", str(GRACEFUL))
    run = shutdown(server, gate, sig, release=False)
    # 500, not a dropped connection: the workers ended the requests themselves,
    # before any SIGKILL at graceful_timeout could.
    assert run.outcomes == ["500"] * IN_FLIGHT
    assert run.code == 0


def test_quick_shutdown_of_gthread_waits_for_its_threads() -> None:
    gate = Gate()
    server = gunicorn(gate, *WORKERS["gthread"], "--graceful-timeout", str(GRACEFUL))
    run = shutdown(server, gate, signal.SIGQUIT, release=True)
    # sys.exit() in the worker's main thread, then the interpreter joins the
    # pool's threads: requests that finish in time still complete.
    assert run.outcomes == ["200"] * IN_FLIGHT


def test_quick_shutdown_of_gthread_lasts_until_graceful_timeout() -> None:
    gate = Gate()
    server = gunicorn(gate, *WORKERS["gthread"], "--graceful-timeout", str(GRACEFUL))
    run = shutdown(server, gate, signal.SIGQUIT, release=False)
    assert run.outcomes == ["dropped"] * IN_FLIGHT
    assert run.seconds >= GRACEFUL and not run.killed_by_deadline


@pytest.mark.parametrize("worker", WORKERS)
def test_graceful_timeout_kills_workers_still_busy(worker: str) -> None:
    gate = Gate()
    server = gunicorn(gate, *WORKERS[worker], "--graceful-timeout", "2")
    run = shutdown(server, gate, signal.SIGTERM, release=False)
    assert run.outcomes == ["dropped"] * IN_FLIGHT
    assert run.code == 0  # the master exits 0 all the same
    assert run.seconds >= 2
    assert not run.killed_by_deadline


# --------------------------------------------------------------------------- #
# --preload and a warm-up thread: the worker inherits a held import lock
# --------------------------------------------------------------------------- #


def test_preload_with_a_warm_up_thread_hangs_the_first_import(
    error_record: ErrorRecorder,
) -> None:
    outcome = report("thread", preload=True)
    assert outcome.first == "500"  # the worker timeout's SIGABRT, mid-request
    assert outcome.worker_timeout
    error_record(
        outcome.timeout_line.strip(),
        id="worker-timeout",
        component="gunicorn",
        version=gunicorn_package.__version__,
        section="preload",
    )
    assert outcome.stuck_in.endswith("> acquire")
    assert outcome.second == "200"  # a new worker, forked after the import


@pytest.mark.parametrize(
    ("warmup", "preload"), [("thread", False), ("now", True), ("now", False)]
)
def test_without_the_thread_at_fork_time_the_import_is_fine(
    warmup: str, preload: bool
) -> None:
    outcome = report(warmup, preload=preload)
    assert (outcome.first, outcome.second) == ("200", "200")
    assert not outcome.worker_timeout


# --------------------------------------------------------------------------- #
# uvicorn: SIGTERM drains; --timeout-graceful-shutdown bounds it
# --------------------------------------------------------------------------- #


def test_uvicorn_sigterm_finishes_in_flight_and_refuses_a_late_request() -> None:
    gate = Gate()
    run = shutdown(uvicorn_server(gate), gate, signal.SIGTERM, release=True, late=True)
    assert run.outcomes == ["200"] * IN_FLIGHT
    assert run.late == "refused"  # one process: its listening socket is closed
    assert run.code == -signal.SIGTERM  # uvicorn re-raises the signal it got


def test_uvicorn_without_a_timeout_waits_until_sigkill() -> None:
    gate = Gate()
    run = shutdown(
        uvicorn_server(gate), gate, signal.SIGTERM, release=False, deadline=2
    )
    assert run.killed_by_deadline
    assert run.outcomes == ["dropped"] * IN_FLIGHT
    assert "Waiting for connections to close. (CTRL+C to force quit)" in "\n".join(
        run.log
    )


def test_uvicorn_timeout_graceful_shutdown_cancels_the_requests() -> None:
    gate = Gate()
    server = uvicorn_server(gate, "--timeout-graceful-shutdown", "1")
    run = shutdown(server, gate, signal.SIGTERM, release=False, deadline=10)
    assert not run.killed_by_deadline
    assert run.seconds >= 1
    assert run.outcomes == ["dropped"] * IN_FLIGHT
    assert (
        "ERROR:    Cancel 4 running task(s), timeout graceful shutdown exceeded"
        in run.log
    )


# Python 3.12.1 made asyncio's Server.wait_closed() wait for every connection
# (gh-79033); uvicorn 0.54.0 awaits it even after a forced exit.
FORCE_QUITS = sys.version_info < (3, 12, 1)


@pytest.mark.parametrize(
    ("second", "forced"),
    [(signal.SIGINT, FORCE_QUITS), (signal.SIGTERM, False)],
    ids=["SIGINT", "SIGTERM"],
)
def test_uvicorn_second_signal_while_requests_run(
    second: signal.Signals, forced: bool
) -> None:
    gate = Gate()
    server = uvicorn_server(gate)
    try:
        requests = Requests(server.port(), IN_FLIGHT)
        gate.wait_arrivals(IN_FLIGHT)
        server.signal(signal.SIGINT)
        server.expect("Waiting for connections to close. (CTRL+C to force quit)")
        server.signal(second)
        try:
            server.wait(timeout=3)
            exited = True
        except subprocess.TimeoutExpired:
            exited = False
        gate.open()
        outcomes = requests.take(IN_FLIGHT)
    finally:
        if server.proc.poll() is None:
            server.kill()
        gate.close()
    assert exited is forced
    # Forced (3.11): the event loop ends with the requests' tasks running, and
    # each is answered 500 as it is cancelled. Otherwise they finish.
    assert outcomes == (["500"] if forced else ["200"]) * IN_FLIGHT


# --------------------------------------------------------------------------- #
# gevent: WSGIServer in a process of its own (it monkey-patches itself; this
# process is never patched), and gunicorn's gevent worker
# --------------------------------------------------------------------------- #

DRAIN = 3  # server.stop(timeout=...) in the gevent server


def test_gevent_names_and_defaults(error_record: ErrorRecorder) -> None:
    assert gevent.signal_handler is gevent_signal_handler
    assert BaseServer.stop_timeout == 1  # serve_forever()'s stop, by default
    # gevent.signal was an alias of signal_handler until 1.5; it is a module
    # now (imported here, as monkey.patch_all() imports it), and older code
    # that calls it fails at start-up.
    with pytest.raises(TypeError) as raised:
        gevent.signal(signal.SIGTERM, print)
    error_record(
        f"TypeError: {str(raised.value).split('. Did you mean')[0]}",
        id="gevent-signal-not-callable",
        component="gevent",
        version=gevent.__version__,
        section="gevent",
    )


def test_gevent_server_without_a_handler_dies_with_its_requests() -> None:
    gate = Gate()
    run = shutdown(
        gevent_server(gate, "naive", DRAIN), gate, signal.SIGTERM, release=True
    )
    assert run.code == -signal.SIGTERM
    assert run.outcomes == ["dropped"] * IN_FLIGHT


def test_gevent_signal_handler_drains_then_cuts_at_the_timeout() -> None:
    gate = Gate()
    server = gevent_server(gate, "handler", DRAIN)
    run = shutdown(server, gate, signal.SIGTERM, release=False, late=True, finish=3)
    # Three finish within the timeout; the fourth is killed at it, and
    # pywsgi answers a handler that died before it started a response 500.
    assert sorted(run.outcomes) == ["200", "200", "200", "500"]
    assert run.late == "refused"  # the listener closes before the drain
    assert run.code == 0 and run.seconds >= DRAIN
    assert "late" not in gate.arrived


def test_gevent_stop_without_a_pool_does_not_wait() -> None:
    gate = Gate()
    server = gevent_server(gate, "no-pool", DRAIN)
    run = shutdown(server, gate, signal.SIGTERM, release=False, late=True, finish=3)
    # stop() waits for a pool only; serve_forever() returns, the process exits.
    assert run.outcomes == ["dropped"] * IN_FLIGHT
    assert run.late == "refused"
    assert run.code == 0


def test_gevent_stop_in_a_plain_signal_handler_cannot_block(
    error_record: ErrorRecorder,
) -> None:
    gate = Gate()
    server = gevent_server(gate, "signal-module", DRAIN)
    run = shutdown(server, gate, signal.SIGTERM, release=False, late=True, finish=3)
    # The handler runs in the hub: pool.join() inside it raises, the hub
    # throws the error into the main greenlet, and serve_forever()'s own stop
    # drains before the error ends the process.
    errors = [line for line in run.log if "BlockingSwitchOutError" in line]
    assert errors, run.log
    error_record(
        errors[-1],
        id="blocking-switch-out",
        component="gevent",
        version=gevent.__version__,
        section="gevent",
    )
    assert run.code == 1
    assert run.late == "refused"
    assert sorted(run.outcomes) == ["200", "200", "200", "500"]


def test_gevent_serve_forever_stops_again_with_its_own_timeout() -> None:
    gate = Gate()
    server = gevent_server(gate, "default-stop-timeout", 30)
    run = shutdown(server, gate, signal.SIGTERM, release=False, deadline=40)
    # The handler asked for 30 s; serve_forever() stopped the server again
    # with stop_timeout (1 s) and killed the requests long before that.
    assert run.outcomes == ["500"] * IN_FLIGHT
    assert run.code == 0 and run.seconds < 15


@pytest.mark.parametrize("release", [True, False], ids=["finish", "never-finish"])
def test_gunicorn_gevent_worker_drains_until_graceful_timeout(release: bool) -> None:
    gate = Gate()
    options = ("-k", "gevent", "--workers", "1", "--graceful-timeout", str(GRACEFUL))
    run = shutdown(gunicorn(gate, *options), gate, signal.SIGTERM, release=release)
    assert run.code == 0 and not run.killed_by_deadline
    if release:
        assert run.outcomes == ["200"] * IN_FLIGHT
    else:
        assert run.outcomes == ["dropped"] * IN_FLIGHT  # the master's SIGKILL
        assert run.seconds >= GRACEFUL
