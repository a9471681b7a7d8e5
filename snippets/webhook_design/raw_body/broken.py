"""Handlers that verify something other than the bytes the provider signed.

Kept to reproduce the failures on the page; do not copy. The DRF variants are
in ``broken_drf.py`` (importing DRF needs configured Django settings).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any

from django.conf import settings  # type: ignore[import-untyped]
from django.http import HttpRequest, HttpResponse  # type: ignore[import-untyped]
from django.views.decorators.csrf import csrf_exempt  # type: ignore[import-untyped]
from fastapi import Body, FastAPI, Request
from fastapi.responses import PlainTextResponse
from flask import Flask, request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from snippets.webhook_design.verify_then_dedupe import VerificationError, Verifier

__all__: list[str] = []


# --8<-- [start:django]
def django_reserialized(request: HttpRequest) -> HttpResponse:
    """Parses first, then verifies ``json.dumps`` of the result."""
    event = json.loads(request.body)
    again = json.dumps(event).encode()  # not the signed bytes
    try:
        Verifier(settings.WEBHOOK_SECRETS).verify(dict(request.headers), again)
    except VerificationError as error:
        return HttpResponse(str(error), status=401, content_type="text/plain")
    return HttpResponse(f"accepted {event['type']}", content_type="text/plain")


# --8<-- [end:django]
django_reserialized = csrf_exempt(django_reserialized)


# --8<-- [start:flask]
def create_flask_broken(secrets: Sequence[str]) -> Flask:
    """``/get-json`` re-serialises; ``/form-first`` reads the form first."""
    app = Flask(__name__)
    verifier = Verifier(secrets)

    @app.post("/get-json")
    def get_json() -> tuple[str, int]:
        event = request.get_json()
        again = json.dumps(event).encode()  # not the signed bytes
        try:
            verifier.verify(dict(request.headers), again)
        except VerificationError as error:
            return str(error), 401
        return f"accepted {event['type']}", 200

    @app.post("/form-first")
    def form_first() -> tuple[str, int]:
        event_type = request.form.get("type", "")  # parses, consumes the stream
        raw = request.get_data()  # now b"": form parsing does not cache
        try:
            verifier.verify(dict(request.headers), raw)
        except VerificationError as error:
            return f"{error} (get_data() returned {len(raw)} bytes)", 401
        return f"accepted {event_type}", 200

    return app


# --8<-- [end:flask]


# --8<-- [start:fastapi]
def create_fastapi_broken(secrets: Sequence[str]) -> FastAPI:
    """The body arrives as a parsed ``dict``; its re-encoding is verified."""
    app = FastAPI()
    verifier = Verifier(secrets)

    @app.post("/webhook", response_class=PlainTextResponse)
    async def webhook(
        request: Request, event: Annotated[dict[str, Any], Body()]
    ) -> PlainTextResponse:
        again = json.dumps(event).encode()  # not the signed bytes
        try:
            verifier.verify(dict(request.headers), again)
        except VerificationError as error:
            return PlainTextResponse(str(error), status_code=401)
        return PlainTextResponse(f"accepted {event['type']}")

    return app


# --8<-- [end:fastapi]


# --8<-- [start:middleware]
class RedactingMiddleware:
    """An ASGI middleware that masks card numbers in JSON bodies before the
    app sees them. Even when nothing is masked it re-serialises the body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        data = json.loads(b"".join(chunks))
        if "card" in data:
            data["card"] = "****"
        body = json.dumps(data).encode()  # the app now gets different bytes
        headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
        scope = {**scope, "headers": [*headers, (b"content-length", b"%d" % len(body))]}

        async def replay() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


# --8<-- [end:middleware]
