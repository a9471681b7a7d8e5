"""The sending side, as a provider runs it: a timeout per attempt, a retry
after every attempt that did not end in a 2xx."""

from __future__ import annotations

import http.client
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from standardwebhooks.webhooks import Webhook

__all__ = ["Attempt", "deliver", "post"]


@dataclass(frozen=True)
class Attempt:
    """What the sender saw for one attempt: a status code, or an error name."""

    status: int | None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def __str__(self) -> str:
        if self.status is not None:
            return str(self.status)
        return "timeout" if self.error == "TimeoutError" else self.error


# --8<-- [start:sender]
def deliver(
    url: str,
    delivery_id: str,
    payload: bytes,
    secret: str,
    *,
    timeout: float,
    attempts: int,
    backoff: float = 0.1,
) -> list[Attempt]:
    """POST one signed delivery the way a provider does: retry until a 2xx.

    Every attempt carries the same `webhook-id` with a fresh timestamp and
    signature. `timeout` bounds each socket operation: a receiver that sends
    nothing back for `timeout` seconds fails the attempt.
    """
    signer = Webhook(secret)
    seen: list[Attempt] = []
    for number in range(attempts):
        if number:
            time.sleep(backoff * 2 ** (number - 1))
        now = datetime.now(tz=UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": delivery_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signer.sign(delivery_id, now, payload.decode()),
        }
        seen.append(post(url, payload, headers, timeout=timeout))
        if seen[-1].ok:
            break
    return seen


# --8<-- [end:sender]


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float) -> Attempt:
    """One POST with a timeout. Any failure becomes an `Attempt` with its error."""
    target = urlsplit(url)
    host, port = target.hostname or "127.0.0.1", target.port
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", target.path or "/", body, headers)
        response = conn.getresponse()
        response.read()
        return Attempt(response.status)
    except (OSError, http.client.HTTPException) as error:
        return Attempt(None, type(error).__name__)
    finally:
        conn.close()
