"""The cases the docker-stop page shows, each a real container on this machine.

    python -m snippets.container_orchestration.docker_stop_and_pid_1.demo CASE

Every container runs from the local base image with `--pull never` and
`--network none`, and is stopped with `docker stop -t 2`.
"""

from __future__ import annotations

import sys

from snippets.support.cases import run_cases
from snippets.support.container_orchestration_docker_stop import (
    run_and_stop,
    seconds_bucket,
)

APP = ["python3", "/app/app.py"]
# (what the page calls it, docker run options, the command)
ENTRYPOINTS = [
    ("exec form, no handler", [], [*APP, "plain"]),
    ("exec form, handler", [], [*APP, "handler"]),
    ("shell form, dash", [], ["/bin/sh", "-c", "python3 /app/app.py handler"]),
    ("shell form, bash", [], ["/bin/bash", "-c", "python3 /app/app.py handler"]),
    ("--init, no handler", ["--init"], [*APP, "plain"]),
]
PREFORK = [
    ("exec form", [], [*APP, "prefork"]),
    ("--init (tini)", ["--init"], [*APP, "prefork"]),
    ("tini -g", [], ["tini", "-g", "--", *APP, "prefork"]),
    ("dumb-init", [], ["dumb-init", *APP, "prefork"]),
    (
        "dumb-init, DUMB_INIT_SETSID=0",
        ["-e", "DUMB_INIT_SETSID=0"],
        ["dumb-init", *APP, "prefork"],
    ),
]


def show_entrypoints() -> list[str]:
    lines = [f"{'entrypoint':<24}{'PID 1':<26}{'stop took':<14}{'exit':<6}handler ran"]
    for label, options, command in ENTRYPOINTS:
        stopped = run_and_stop(command, run_options=options)
        pid1 = stopped.pid1.replace("/app/app.py", "app.py")
        pid1 = pid1 if len(pid1) <= 24 else pid1[:21] + "..."
        took = seconds_bucket(stopped.seconds, 2)
        ran = "yes" if stopped.drained else "no"
        lines.append(f"{label:<24}{pid1:<26}{took:<14}{stopped.exit_code:<6}{ran}")
    return lines


def show_prefork() -> list[str]:
    lines = [f"{'PID 1':<31}{'workers finished':<18}{'killed':<8}exit"]
    for label, options, command in PREFORK:
        stopped = run_and_stop(command, run_options=options, ready=3)
        finished = sum("finished its request" in line for line in stopped.lines)
        killed = sum("killed by SIGTERM" in line for line in stopped.lines)
        lines.append(f"{label:<31}{finished:<18}{killed:<8}{stopped.exit_code}")
    return lines


if __name__ == "__main__":
    sys.exit(run_cases({"entrypoints": show_entrypoints, "prefork": show_prefork}))
