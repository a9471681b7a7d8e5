"""One Flask app, four providers, each checked with the provider's own code.

Every route reads ``request.get_data()`` (the raw body) or, for Twilio, the
form parameters and the URL the provider called, before anything else.
"""

from __future__ import annotations

from dataclasses import dataclass

import stripe
from flask import Flask, request
from slack_sdk.signature import SignatureVerifier
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from snippets.webhook_design.provider_signatures.schemes import (
    SignatureMismatch,
    verify_github,
)

__all__ = ["ProviderSecrets", "create_receiver_app", "public_url"]


# --8<-- [start:secrets]
@dataclass(frozen=True)
class ProviderSecrets:
    """One secret per provider *and* per endpoint and mode: a Stripe endpoint
    in live mode has a different ``whsec_`` than the same URL in test mode."""

    stripe_endpoint_secret: str
    github_webhook_secret: str
    slack_signing_secret: str
    twilio_auth_token: str
    public_base_url: str  # the scheme and host the provider calls, no slash


# --8<-- [end:secrets]


# --8<-- [start:url]
def public_url(base: str) -> str:
    """The URL Twilio signed: your public origin, then the path and query
    exactly as received. Not ``request.url``: behind a proxy or a tunnel that
    is ``http://127.0.0.1:8000/...``, which Twilio never called."""
    query = request.query_string.decode()
    return base + request.path + (f"?{query}" if query else "")


# --8<-- [end:url]


def create_receiver_app(secrets: ProviderSecrets) -> Flask:
    """Routes ``/stripe``, ``/github``, ``/slack`` and ``/twilio/sms``."""
    app = Flask(__name__)
    slack = SignatureVerifier(secrets.slack_signing_secret)
    twilio = RequestValidator(secrets.twilio_auth_token)

    # --8<-- [start:stripe]
    @app.post("/stripe")
    def stripe_webhook() -> tuple[str, int]:
        try:
            event = stripe.Webhook.construct_event(
                request.get_data(),  # the bytes as received, not parsed
                request.headers.get("Stripe-Signature"),
                secrets.stripe_endpoint_secret,  # tolerance: 300 s by default
            )
        except stripe.SignatureVerificationError as error:
            return f"SignatureVerificationError: {error}", 400
        return f"accepted {event['type']}", 200

    # --8<-- [end:stripe]

    # --8<-- [start:github]
    @app.post("/github")
    def github_webhook() -> tuple[str, int]:
        try:
            verify_github(
                secrets.github_webhook_secret, request.get_data(), dict(request.headers)
            )
        except SignatureMismatch as error:
            return str(error), 401
        return f"accepted {request.headers.get('X-GitHub-Event', '')}", 200

    # --8<-- [end:github]

    # --8<-- [start:slack]
    @app.post("/slack")
    def slack_webhook() -> tuple[str, int]:
        # is_valid_request checks the timestamp (5 minutes, both ways) and the
        # signature; it returns False with no reason, so log what you can.
        if not slack.is_valid_request(request.get_data(), dict(request.headers)):
            return "is_valid_request returned False", 401
        return f"accepted {request.form.get('command', '')}", 200

    # --8<-- [end:slack]

    # --8<-- [start:twilio]
    @app.post("/twilio/sms")
    def twilio_webhook() -> tuple[str, int]:
        url = public_url(secrets.public_base_url)
        signature = request.headers.get("X-Twilio-Signature", "")
        if not twilio.validate(url, request.form, signature):
            return f"validate returned False for {url}", 403
        return f"accepted {request.form.get('MessageSid', '')}", 200

    # --8<-- [end:twilio]

    return app
