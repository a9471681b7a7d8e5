"""Reading the provider's API with the receiver's own credential."""

from __future__ import annotations

import http.client
import json
from urllib.parse import quote, urlsplit

from snippets.webhook_design.thin_payloads.events import Snapshot

__all__ = ["ProviderClient", "ProviderError"]


class ProviderError(Exception):
    """The provider's API answered something other than 200 or 404."""


# --8<-- [start:client]
class ProviderClient:
    """Reads objects from the provider's API with the receiver's own token.

    Args:
        base_url: The API's address, for example ``https://api.example.com``.
        token: A read-only credential for the API.
        timeout: Seconds for each socket operation of a request.
    """

    def __init__(self, base_url: str, token: str, *, timeout: float = 5.0) -> None:
        self.target = urlsplit(base_url)
        self.token, self.timeout = token, timeout

    def get(self, object_id: str) -> Snapshot | None:
        """The object as the API shows it now, or None if it answers 404."""
        host, port = self.target.hostname or "127.0.0.1", self.target.port
        conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
        try:
            conn.request(
                "GET",
                f"/v1/customers/{quote(object_id, safe='')}",
                headers={"authorization": f"Bearer {self.token}"},
            )
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        if response.status == 404:
            return None
        if response.status != 200:
            raise ProviderError(f"GET {object_id}: HTTP {response.status}")
        return Snapshot.from_json(json.loads(body))


# --8<-- [end:client]
