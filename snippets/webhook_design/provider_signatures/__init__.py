"""Stripe, GitHub, Slack and Twilio signatures, checked by the providers' code.

* `create_receiver_app`: a Flask app with one route per provider. Stripe goes
  through ``stripe.Webhook.construct_event``, Slack through
  ``slack_sdk.signature.SignatureVerifier``, Twilio through
  ``twilio.request_validator.RequestValidator`` with the public URL
  (`public_url`); GitHub, which ships no Python verifier, through
  `verify_github`.
* `ProviderSecrets`: one secret per provider, endpoint and mode.
* ``schemes.py``: each scheme in the standard library, the other side of the
  interop tests.

The receivers that feed a verifier the wrong input are in ``broken.py``; the
cases the page shows are in ``demo.py``.
"""

from snippets.webhook_design.provider_signatures.receivers import (
    ProviderSecrets,
    create_receiver_app,
    public_url,
)
from snippets.webhook_design.provider_signatures.schemes import (
    SignatureMismatch,
    github_signature_256,
    github_signature_sha1,
    slack_signature,
    stripe_signature_header,
    twilio_signature,
    verify_github,
)

__all__ = [
    "ProviderSecrets",
    "SignatureMismatch",
    "create_receiver_app",
    "github_signature_256",
    "github_signature_sha1",
    "public_url",
    "slack_signature",
    "stripe_signature_header",
    "twilio_signature",
    "verify_github",
]
