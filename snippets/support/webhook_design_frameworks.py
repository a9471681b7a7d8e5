"""Serve real web-framework apps on loopback for the webhook-design tool pages.

* `serve_wsgi` runs a WSGI app (Django, Flask) under `wsgiref`, one thread per
  request, on 127.0.0.1 and a free port.
* `serve_asgi` runs an ASGI app (FastAPI, Starlette) under uvicorn on a thread,
  on a socket bound to 127.0.0.1 port 0.
* `configure_django` sets up Django once per process: the settings a webhook
  project needs and a URLconf with the raw-body views of the page.
* `post` sends one request with `http.client` and returns status and text.
"""

from __future__ import annotations

import http.client
import inspect
import logging
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import uvicorn

__all__ = ["configure_django", "django_app", "post", "serve_asgi", "serve_wsgi"]

WSGIApp = Callable[..., Any]


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle(self) -> None:
        super().handle()
        # Lingering close, as nginx does it: an app that answers 400 or 413
        # without reading the body leaves bytes unread, and closing then
        # sends a reset that can destroy the answer before the client reads
        # it. Half-close, drain what the client still sends, then close.
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(2.0)
            while self.connection.recv(65536):
                pass
        except OSError:
            pass


@contextmanager
def serve_wsgi(app: WSGIApp) -> Iterator[str]:
    """Serve ``app`` under wsgiref; yield its base URL."""
    server = make_server(
        "127.0.0.1",
        0,
        app,
        server_class=_ThreadingWSGIServer,
        handler_class=_QuietHandler,
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def serve_asgi(app: Any, **options: Any) -> Iterator[str]:
    """Serve ``app`` under uvicorn on a thread; yield its base URL.

    ``options`` go to ``uvicorn.Config``: ``forwarded_allow_ips``, or
    ``lifespan="on"`` to run the app's start-up before the first request
    (off by default).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, **{"log_level": "warning", "lifespan": "off", **options}
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    try:
        for _ in range(500):  # bounded wait for start-up, 5 s
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.01)
        if not server.started:
            raise RuntimeError("uvicorn did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def post(
    url: str, body: bytes, headers: Mapping[str, str] | None = None
) -> tuple[int, str]:
    """POST ``body`` to ``url``; return the status and the response text."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        sent = {"Content-Type": "application/json", **(headers or {})}
        conn.request("POST", path, body=body, headers=sent)
        response = conn.getresponse()
        text = response.read().decode(errors="replace").strip()
        return response.status, text.splitlines()[0] if text else ""
    finally:
        conn.close()


_django_secrets: list[str] = []


def configure_django(secrets: Sequence[str]) -> None:
    """Configure Django once per process with the page's webhook settings."""
    import django  # type: ignore[import-untyped]
    from django.conf import settings  # type: ignore[import-untyped]

    if settings.configured:
        if list(secrets) != _django_secrets:
            raise RuntimeError("Django is configured once per process")
        return
    _django_secrets.extend(secrets)
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["127.0.0.1"],
        ROOT_URLCONF=__name__,
        SECRET_KEY="not-a-secret-for-loopback-tests",
        INSTALLED_APPS=["django.contrib.contenttypes", "rest_framework"],
        MIDDLEWARE=[
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
        ],
        WEBHOOK_SECRETS=list(secrets),
        LOGGING_CONFIG=None,
        REST_FRAMEWORK={"UNAUTHENTICATED_USER": None},
    )
    django.setup()
    logging.getLogger("django.request").setLevel(logging.CRITICAL)  # no 401 lines


def django_app() -> WSGIApp:
    """Django's WSGI application, after `configure_django`."""
    from django.core.wsgi import (  # type: ignore[import-untyped]
        get_wsgi_application,
    )

    app: WSGIApp = get_wsgi_application()
    return app


def __getattr__(name: str) -> Any:
    """Django's URLconf, built on first use (Django must be configured first)."""
    if name != "urlpatterns":
        raise AttributeError(name)
    from django.urls import path  # type: ignore[import-untyped]

    from snippets.webhook_design.raw_body import django_webhook
    from snippets.webhook_design.raw_body.broken import django_reserialized
    from snippets.webhook_design.raw_body.broken_drf import (
        DrfBodyAfterDataView,
        DrfDataView,
    )
    from snippets.webhook_design.raw_body.drf_view import DrfWebhookView

    return [
        path("django/webhook", django_webhook),
        path("django/broken", django_reserialized),
        path("django/no-csrf-exempt", inspect.unwrap(django_webhook)),
        path("drf/webhook", DrfWebhookView.as_view()),
        path("drf/broken-data", DrfDataView.as_view()),
        path("drf/broken-body-after-data", DrfBodyAfterDataView.as_view()),
    ]
