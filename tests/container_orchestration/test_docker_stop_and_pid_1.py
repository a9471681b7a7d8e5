"""Tests for snippets/container_orchestration/docker_stop_and_pid_1/.

Every test runs a real container (Debian's docker.io, a base image built from
this machine's files, `--pull never`, `--network none`) and stops it with
`docker stop -t 2`: SIGTERM to PID 1, SIGKILL 2 s later. The default timeout,
10 s, only makes the waits longer; the page cites it from Docker's reference.
"""

from __future__ import annotations

import pytest

from snippets.support.container_orchestration_docker_stop import (
    Stopped,
    run_and_stop,
)

APP = ["python3", "/app/app.py"]
TIMEOUT = 2


def stop(
    command: list[str], options: list[str] | None = None, **kwargs: int
) -> Stopped:
    return run_and_stop(command, run_options=options or [], timeout=TIMEOUT, **kwargs)


def assert_killed_at_the_timeout(stopped: Stopped) -> None:
    assert stopped.exit_code == 137  # 128 + SIGKILL
    assert stopped.seconds >= TIMEOUT - 0.2
    assert not stopped.drained


def assert_stopped_at_once(stopped: Stopped) -> None:
    assert stopped.seconds < TIMEOUT - 0.5


def test_python_without_a_handler_as_pid_1_waits_for_sigkill(docker: str) -> None:
    stopped = stop([*APP, "plain"])
    assert stopped.pid1 == "python3 /app/app.py plain"
    assert_killed_at_the_timeout(stopped)


def test_shell_form_with_dash_keeps_the_shell_as_pid_1(docker: str) -> None:
    # CMD python3 app.py handler: /bin/sh -c, and Debian's /bin/sh is dash.
    stopped = stop(["/bin/sh", "-c", "python3 /app/app.py handler"])
    assert stopped.pid1 == "/bin/sh -c python3 /app/app.py handler"
    assert_killed_at_the_timeout(stopped)  # the handler never ran


def test_shell_form_with_bash_execs_the_last_command(docker: str) -> None:
    stopped = stop(["/bin/bash", "-c", "python3 /app/app.py handler"])
    assert stopped.pid1 == "python3 /app/app.py handler"
    assert_stopped_at_once(stopped)
    assert stopped.exit_code == 0 and stopped.drained


def test_bash_stays_in_front_of_a_pipeline(docker: str) -> None:
    stopped = stop(["/bin/bash", "-c", "python3 /app/app.py handler | cat"])
    assert stopped.pid1.startswith("/bin/bash -c")
    assert_killed_at_the_timeout(stopped)


def test_exec_form_with_a_handler_drains_and_exits_0(docker: str) -> None:
    stopped = stop([*APP, "handler"])
    assert_stopped_at_once(stopped)
    assert stopped.exit_code == 0 and stopped.drained


def test_init_forwards_sigterm_to_python_without_a_handler(docker: str) -> None:
    stopped = stop([*APP, "plain"], ["--init"])
    assert stopped.pid1 == "/sbin/docker-init -- python3 /app/app.py plain"
    assert_stopped_at_once(stopped)
    assert stopped.exit_code == 143  # 128 + SIGTERM: Python died of it


@pytest.mark.parametrize(
    ("command", "options", "finished"),
    [
        ([*APP, "prefork"], [], 2),
        ([*APP, "prefork"], ["--init"], 2),
        (["tini", "-g", "--", *APP, "prefork"], [], 0),
        (["dumb-init", *APP, "prefork"], [], 0),
        (["dumb-init", *APP, "prefork"], ["-e", "DUMB_INIT_SETSID=0"], 2),
        (["dumb-init", "--single-child", *APP, "prefork"], [], 2),
    ],
    ids=["exec", "tini", "tini-g", "dumb-init", "dumb-init-setsid-0", "single-child"],
)
def test_prefork_workers_finish_only_when_the_init_signals_the_parent_alone(
    docker: str, command: list[str], options: list[str], finished: int
) -> None:
    stopped = stop(command, options, ready=3)
    assert stopped.exit_code == 0 and stopped.drained
    done = sum("finished its request" in line for line in stopped.lines)
    killed = sum("killed by SIGTERM" in line for line in stopped.lines)
    assert (done, killed) == (finished, 2 - finished), stopped.lines
