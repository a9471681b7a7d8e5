"""Checking a delivery: its signature over the raw bytes, then its timestamp."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from snippets.webhook_design.verify_then_dedupe.signing import parse_secret

__all__ = [
    "MAX_ID_LENGTH",
    "TOLERANCE_SECONDS",
    "Delivery",
    "VerificationError",
    "Verifier",
]

TOLERANCE_SECONDS = 300.0  # what the reference libraries use, in both directions
MAX_ID_LENGTH = 256
_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # integer Unix seconds, ASCII digits only


class VerificationError(Exception):
    """The delivery is not authentic or not fresh: answer 401, change nothing."""


@dataclass(frozen=True)
class Delivery:
    """A verified delivery: its id, its attempt timestamp and the signed bytes."""

    msg_id: str
    timestamp: int
    body: bytes

    def payload(self) -> Any:
        """The body parsed as JSON; parse only after verifying."""
        return json.loads(self.body)


# --8<-- [start:verifier]
class Verifier:
    """Checks Standard Webhooks signatures and timestamps.

    Args:
        secrets: Every secret that may sign a delivery; more than one while
            you rotate keys.
        tolerance: Seconds a timestamp may lie in the past or the future.
        clock: Returns the current Unix time.
    """

    def __init__(
        self,
        secrets: Iterable[str],
        *,
        tolerance: float = TOLERANCE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = [parse_secret(secret) for secret in secrets]
        if not self._keys:
            raise ValueError("at least one signing secret is required")
        self._tolerance = tolerance
        self._clock = clock

    # --8<-- [end:verifier]

    # --8<-- [start:verify]
    def verify(self, headers: Mapping[str, str], body: bytes) -> Delivery:
        """Return the delivery if it is authentic and fresh.

        Raises:
            VerificationError: A header is missing or malformed, no signature
                matches, or the timestamp is outside the tolerance.
        """
        found = {name.lower(): value for name, value in headers.items()}
        msg_id = found.get("webhook-id", "")
        stamp = found.get("webhook-timestamp", "")
        signatures = found.get("webhook-signature", "")
        if not (0 < len(msg_id) <= MAX_ID_LENGTH and _TIMESTAMP.fullmatch(stamp)):
            raise VerificationError("missing or malformed webhook headers")
        if not self._any_signature_matches(msg_id, stamp, body, signatures):
            raise VerificationError("no matching signature")
        age = self._clock() - int(stamp)  # trusted now: the timestamp is signed
        if age > self._tolerance:
            raise VerificationError("timestamp too old")
        if age < -self._tolerance:
            raise VerificationError("timestamp too new")
        return Delivery(msg_id, int(stamp), body)

    # --8<-- [end:verify]

    # --8<-- [start:compare]
    def _any_signature_matches(
        self, msg_id: str, stamp: str, body: bytes, header: str
    ) -> bool:
        received = []
        for entry in header.split():
            version, _, encoded = entry.partition(",")
            if version != "v1":  # v1a (ed25519) or a scheme this code predates
                continue
            try:
                received.append(base64.b64decode(encoded, validate=True))
            except binascii.Error:
                continue
        signed = f"{msg_id}.{stamp}.".encode() + body  # the raw bytes, unparsed
        for key in self._keys:
            expected = hmac.new(key, signed, hashlib.sha256).digest()
            for candidate in received:
                # Constant time: never `==`, which may stop at the first
                # differing byte and so tell a forger how much was right.
                if hmac.compare_digest(expected, candidate):
                    return True
        return False

    # --8<-- [end:compare]
