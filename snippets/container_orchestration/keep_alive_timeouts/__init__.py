"""Keep-alive timeouts behind a proxy: the proxy closes idle connections first.

`hop_problems` checks a chain of kept-alive connections (load balancer ->
nginx -> gunicorn or uvicorn) for a server that closes idle connections
before the client that sends on them; `app_keep_alive` gives the server's
timeout. The nginx configuration (``nginx.conf``), the gunicorn
configuration (``gunicorn_conf.py``) and the app the tests run
(``apps.py``) are files beside this one; ``demo.py`` runs them.
"""

from snippets.container_orchestration.keep_alive_timeouts.budget import (
    Hop,
    app_keep_alive,
    hop_problems,
)

__all__ = ["Hop", "app_keep_alive", "hop_problems"]
