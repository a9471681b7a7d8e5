"""Standard Webhooks signing secrets and signatures: the sender's side.

This is the one signer the guide uses: `sign` computes the ``v1,<base64>``
HMAC-SHA256 over ``{msg_id}.{timestamp}.{body}``, and `signature_headers`
builds the three ``webhook-*`` headers of one attempt, signed once per secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence

__all__ = [
    "SECRET_PREFIX",
    "new_secret",
    "parse_secret",
    "sign",
    "signature_headers",
]

SECRET_PREFIX = "whsec_"


# --8<-- [start:secret]
def parse_secret(secret: str) -> bytes:
    """Decode a signing secret: base64 with an optional ``whsec_`` prefix.

    Raises:
        ValueError: The secret is not base64, or its key is shorter than the
            24 bytes (192 bits) or longer than the 64 bytes (512 bits) that
            Standard Webhooks allows.
    """
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error as error:
        raise ValueError("the signing secret is not valid base64") from error
    if not 24 <= len(key) <= 64:
        raise ValueError(f"the signing key has {len(key)} bytes, not 24 to 64")
    return key


def new_secret() -> str:
    """A fresh random signing secret (32 bytes), in the ``whsec_`` format."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


# --8<-- [end:secret]


# --8<-- [start:sign]
def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one delivery attempt."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    mac = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def signature_headers(
    secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The headers of one attempt, signed once per secret.

    During a key rotation the sender passes the new and the old secret; the
    receiver accepts the delivery if any one signature matches a key it knows.
    """
    signatures = [sign(parse_secret(s), msg_id, timestamp, body) for s in secrets]
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signatures),
    }


# --8<-- [end:sign]
