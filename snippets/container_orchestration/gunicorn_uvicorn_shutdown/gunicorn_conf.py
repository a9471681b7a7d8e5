"""A gunicorn configuration file for Kubernetes: ``gunicorn -c THIS_FILE app:app``.

gunicorn reads the module-level names that match its settings and ignores
the others. The grace period and the preStop time come from the environment,
so the Deployment and the server agree on one budget.
"""

from __future__ import annotations

import os

from snippets.container_orchestration.gunicorn_uvicorn_shutdown.budget import (
    drain_budget,
)

__all__ = [
    "bind",
    "control_socket_disable",
    "graceful_timeout",
    "preload_app",
    "threads",
    "timeout",
    "worker_class",
    "workers",
]

# --8<-- [start:config]
bind = os.environ.get("BIND", "0.0.0.0:8080")
worker_class = "gthread"
workers = int(os.environ.get("WORKERS", "2"))
threads = int(os.environ.get("THREADS", "4"))

# SIGTERM to the master: stop accepting, let workers finish, SIGKILL the
# ones still busy after graceful_timeout. The default (30 s) equals the
# Kubernetes default grace period, so it would end at the moment of SIGKILL.
graceful_timeout = drain_budget(
    grace_seconds=int(os.environ.get("GRACE_SECONDS", "30")),
    pre_stop_seconds=int(os.environ.get("PRE_STOP_SECONDS", "5")),
)
timeout = 30  # a worker silent this long is killed (the heartbeat, not a request)

# Import the app in each worker after the fork (the default): no lock or
# thread of the master's is inherited half-way through.
preload_app = False
control_socket_disable = True  # gunicornc is not used in a container
# --8<-- [end:config]
