"""Graceful shutdown in gunicorn, uvicorn and gevent: the signal, the budget,
the fork.

gunicorn and uvicorn drain in-flight requests on SIGTERM themselves; what
goes wrong is configuration. SIGQUIT and SIGINT are gunicorn's quick
shutdown; ``graceful_timeout`` defaults to the Kubernetes grace period;
uvicorn's ``--timeout-graceful-shutdown`` defaults to no limit. gevent's
WSGIServer run on its own drains nothing until you install the handler.

* `drain_budget` turns the grace period and the preStop time into the drain
  timeout for either server.
* `app` and `asgi_app` are the demo's slow endpoints, WSGI and ASGI.
* `warm_in_background` is the ``--preload`` hazard: a thread inside an
  import when the master forks; `warm_now` imports before the fork.
* `serve_gevent` runs gevent's WSGIServer with a SIGTERM handler that stops
  it with a drain timeout.

``gunicorn_conf.py`` in this package is a configuration file for
``gunicorn -c``.
"""

from snippets.container_orchestration.gunicorn_uvicorn_shutdown.apps import (
    app,
    asgi_app,
)
from snippets.container_orchestration.gunicorn_uvicorn_shutdown.budget import (
    KUBERNETES_GRACE_SECONDS,
    drain_budget,
)
from snippets.container_orchestration.gunicorn_uvicorn_shutdown.gevent_server import (
    serve_gevent,
)
from snippets.container_orchestration.gunicorn_uvicorn_shutdown.warmup import (
    warm_in_background,
    warm_now,
)

__all__ = [
    "KUBERNETES_GRACE_SECONDS",
    "app",
    "asgi_app",
    "drain_budget",
    "serve_gevent",
    "warm_in_background",
    "warm_now",
]
