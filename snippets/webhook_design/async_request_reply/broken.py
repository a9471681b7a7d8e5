"""The two broken clients the page starts from."""

from __future__ import annotations

import time
import uuid
from contextlib import closing
from typing import Any

from snippets.webhook_design.async_request_reply.client import JobClient
from snippets.webhook_design.async_request_reply.transport import json_body

__all__ = ["KeylessClient", "RecordAfterResponseClient"]


# --8<-- [start:record-after]
class RecordAfterResponseClient(JobClient):
    """Anti-pattern: writes the request down only once the 202 has arrived."""

    def submit(self, job_input: Any) -> str:
        key = str(uuid.uuid4())
        body = json_body({"input": job_input, "callback_url": self.callback_url})
        job_id, status_url = self._post(body, key)
        self._record_accepted(key, job_id, status_url)
        return key

    def _record_accepted(self, key: str, job_id: str, status_url: str) -> None:
        with closing(self.connect()) as conn:  # a callback before this: unknown
            conn.execute(
                "INSERT INTO requests (key, job_id, status_url, created_at)"
                " VALUES (?, ?, ?, ?)",
                (key, job_id, status_url, time.time()),
            )


# --8<-- [end:record-after]


# --8<-- [start:keyless]
class KeylessClient(JobClient):
    """Anti-pattern: retries the POST, but without an ``Idempotency-Key``."""

    def _post(self, body: bytes, key: str | None) -> tuple[str, str]:
        return super()._post(body, None)  # a retry looks like a new request


# --8<-- [end:keyless]
