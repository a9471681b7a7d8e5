"""FastAPI (Starlette): verify ``await request.body()``."""

from __future__ import annotations

import json
from collections.abc import Sequence

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

from snippets.webhook_design.verify_then_dedupe import VerificationError, Verifier

__all__ = ["create_fastapi_app"]


# --8<-- [start:app]
def create_fastapi_app(secrets: Sequence[str]) -> FastAPI:
    """A FastAPI app with one webhook route, ``POST /webhook``."""
    app = FastAPI()
    verifier = Verifier(secrets)

    @app.post("/webhook", response_class=PlainTextResponse)
    async def webhook(request: Request) -> PlainTextResponse:
        # No body parameter (no model, no dict): take the bytes, not values
        # that you would have to re-encode.
        raw = await request.body()
        try:
            verifier.verify(dict(request.headers), raw)
        except VerificationError as error:
            return PlainTextResponse(str(error), status_code=401)
        event = json.loads(raw)
        return PlainTextResponse(f"accepted {event['type']}")

    return app


# --8<-- [end:app]
