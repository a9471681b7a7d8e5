"""Twilio receivers that rebuild the public URL from the proxy's headers.

Twilio signs the URL it called (``https://hooks.example.com/...``) and the
form parameters. Behind a TLS-terminating proxy the app receives plain HTTP
from the proxy's address, so ``request.url`` is ``http://127.0.0.1:8000/...``
until the app is told to read ``X-Forwarded-Proto`` and ``X-Forwarded-Host``,
and it must read them only from the proxy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from flask import Flask, request
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

__all__ = ["ForwardedOnlyFromProxy", "create_asgi_receiver", "create_flask_receiver"]

StartResponse = Callable[..., Any]
FORWARDED = ("HTTP_X_FORWARDED_", "HTTP_FORWARDED")
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


# --8<-- [start:flask]
def create_flask_receiver(auth_token: str) -> Flask:
    """``/twilio/sms`` verifies with ``request.url``; ``/uploads/hook`` counts."""
    app = Flask(__name__)
    validator = RequestValidator(auth_token)

    @app.post("/twilio/sms")
    def twilio_sms() -> tuple[str, int]:
        who = f"url={request.url} client={request.remote_addr}"
        signature = request.headers.get("X-Twilio-Signature", "")
        if not validator.validate(request.url, request.form, signature):
            return f"validate returned False; {who}", 403
        return f"accepted {request.form.get('MessageSid', '')}; {who}", 200

    # --8<-- [end:flask]
    @app.post("/uploads/hook")
    def upload() -> tuple[str, int]:
        return f"received {len(request.get_data())} bytes", 200

    return app


# --8<-- [start:trusted]
class ForwardedOnlyFromProxy:
    """Drop ``X-Forwarded-*`` and ``Forwarded`` unless the peer is the proxy.

    ``ProxyFix`` and Django's ``SECURE_PROXY_SSL_HEADER`` believe the headers
    of whoever connects. Wrap the WSGI app in this, outermost, and a client
    that reaches the app without the proxy gets no say in its URL or address.
    """

    def __init__(self, app: WSGIApp, proxies: Iterable[str]) -> None:
        self.app = app
        self.proxies = frozenset(proxies)  # the addresses the proxy connects from

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        if environ.get("REMOTE_ADDR") not in self.proxies:
            for key in [k for k in environ if k.startswith(FORWARDED)]:
                del environ[key]
        return self.app(environ, start_response)


# --8<-- [end:trusted]


# --8<-- [start:asgi]
def create_asgi_receiver(auth_token: str) -> FastAPI:
    """The same check in FastAPI; uvicorn's proxy headers fix the scheme."""
    app = FastAPI()
    validator = RequestValidator(auth_token)

    @app.post("/asgi/twilio/sms")
    async def twilio_sms(request: Request) -> PlainTextResponse:
        form = dict(parse_qsl((await request.body()).decode()))
        client = request.client.host if request.client else "-"
        who = f"url={request.url} client={client}"
        signature = request.headers.get("X-Twilio-Signature", "")
        if not validator.validate(str(request.url), form, signature):
            return PlainTextResponse(f"validate returned False; {who}", 403)
        return PlainTextResponse(f"accepted {form.get('MessageSid', '')}; {who}")

    return app


# --8<-- [end:asgi]
