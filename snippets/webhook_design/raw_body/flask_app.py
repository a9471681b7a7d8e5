"""Flask: verify ``request.get_data()``, JSON or form-encoded."""

from __future__ import annotations

import json
from collections.abc import Sequence

from flask import Flask, request

from snippets.webhook_design.verify_then_dedupe import VerificationError, Verifier

__all__ = ["create_flask_app"]


# --8<-- [start:app]
def create_flask_app(secrets: Sequence[str]) -> Flask:
    """A Flask app with one webhook route, ``POST /webhook``."""
    app = Flask(__name__)
    verifier = Verifier(secrets)

    @app.post("/webhook")
    def webhook() -> tuple[str, int]:
        raw = request.get_data()  # first: request.form would consume the stream
        try:
            verifier.verify(dict(request.headers), raw)
        except VerificationError as error:
            return str(error), 401
        if request.mimetype == "application/x-www-form-urlencoded":
            event_type = request.form["type"]  # parsed from the cached bytes
        else:
            event_type = json.loads(raw)["type"]
        return f"accepted {event_type}", 200

    return app


# --8<-- [end:app]
