"""gunicorn behind nginx or a load balancer that reuses connections.

Run: ``gunicorn -c gunicorn_conf.py myapp.wsgi:application``.
"""

import os

# --8<-- [start:config]
bind = os.environ.get("BIND", "0.0.0.0:8000")
worker_class = "gthread"  # the sync worker closes after every response
workers = int(os.environ.get("WORKERS", "2"))
threads = 4
# Longer than every proxy's idle timeout in front of it (nginx upstream
# keepalive_timeout 60 s, AWS ALB idle timeout 60 s), so that the proxy,
# not the app, closes an idle connection. gunicorn's default is 2 s.
keepalive = int(os.environ.get("KEEPALIVE", "75"))
# --8<-- [end:config]
control_socket_disable = True  # no gunicornc here; see gunicorn-uvicorn-shutdown
