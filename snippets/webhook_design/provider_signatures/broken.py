"""Receivers that hand the provider's verifier the wrong input. Do not copy."""

from __future__ import annotations

import json

import stripe
from flask import Flask, request
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from snippets.webhook_design.provider_signatures.receivers import ProviderSecrets
from snippets.webhook_design.provider_signatures.schemes import (
    SignatureMismatch,
    verify_github,
)

__all__: list[str] = []


# --8<-- [start:broken]
def create_broken_app(secrets: ProviderSecrets) -> Flask:
    """Stripe and GitHub verify a re-serialised body; Twilio gets request.url."""
    app = Flask(__name__)

    @app.post("/stripe")
    def stripe_parsed() -> tuple[str, int]:
        again = json.dumps(request.get_json())  # not the bytes Stripe signed
        signature = request.headers.get("Stripe-Signature")
        try:
            stripe.Webhook.construct_event(
                again, signature, secrets.stripe_endpoint_secret
            )
        except stripe.SignatureVerificationError as error:
            return f"SignatureVerificationError: {error}", 400
        return "accepted", 200

    @app.post("/github")
    def github_parsed() -> tuple[str, int]:
        again = json.dumps(request.get_json()).encode()
        try:
            verify_github(secrets.github_webhook_secret, again, dict(request.headers))
        except SignatureMismatch as error:
            return str(error), 401
        return "accepted", 200

    @app.post("/twilio/sms")
    def twilio_request_url() -> tuple[str, int]:
        validator = RequestValidator(secrets.twilio_auth_token)
        signature = request.headers.get("X-Twilio-Signature", "")
        if not validator.validate(request.url, request.form, signature):
            return f"validate returned False for {request.url}", 403
        return "accepted", 200

    return app


# --8<-- [end:broken]
