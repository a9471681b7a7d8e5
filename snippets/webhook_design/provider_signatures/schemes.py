"""Each provider's signing scheme in the standard library: sign and check.

The receivers use the providers' own verifiers where one is on PyPI; these
functions are the other side of the interop tests, and the GitHub check (there
is no official Python verifier for GitHub).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

__all__ = [
    "SignatureMismatch",
    "github_signature_256",
    "github_signature_sha1",
    "slack_signature",
    "stripe_signature_header",
    "twilio_signature",
    "verify_github",
]


class SignatureMismatch(Exception):
    """The signature does not match the bytes and secret we have."""


# --8<-- [start:stripe]
def stripe_signature_header(secret: str, timestamp: int, payload: bytes) -> str:
    """``Stripe-Signature``: ``t=<unix>,v1=<hex HMAC-SHA256 of "t.payload">``."""
    signed = f"{timestamp}.".encode() + payload
    mac = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


# --8<-- [end:stripe]


# --8<-- [start:github]
def github_signature_256(secret: str, body: bytes) -> str:
    """``X-Hub-Signature-256``: ``sha256=`` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def github_signature_sha1(secret: str, body: bytes) -> str:
    """The legacy ``X-Hub-Signature``: ``sha1=`` and a hex HMAC-SHA1."""
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def verify_github(secret: str, body: bytes, headers: Mapping[str, str]) -> None:
    """Check ``X-Hub-Signature-256`` over the raw body; never the sha1 header.

    Raises:
        SignatureMismatch: The header is missing or does not match.
    """
    found = {name.lower(): value for name, value in headers.items()}
    received = found.get("x-hub-signature-256")
    if received is None:
        raise SignatureMismatch("X-Hub-Signature-256 header is missing")
    if not hmac.compare_digest(github_signature_256(secret, body), received):
        raise SignatureMismatch("X-Hub-Signature-256 does not match")


# --8<-- [end:github]


# --8<-- [start:slack]
def slack_signature(secret: str, timestamp: int, body: bytes) -> str:
    """``X-Slack-Signature``: ``v0=`` and the hex HMAC-SHA256 of
    ``v0:<X-Slack-Request-Timestamp>:<body>``."""
    base = f"v0:{timestamp}:".encode() + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


# --8<-- [end:slack]


# --8<-- [start:twilio]
def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """``X-Twilio-Signature``: base64 HMAC-SHA1 of the full URL followed by
    every POST parameter's name and value, sorted by name."""
    data = url + "".join(name + params[name] for name in sorted(params))
    mac = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode()


# --8<-- [end:twilio]
