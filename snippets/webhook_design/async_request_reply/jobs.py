"""What a job request is: validation, the idempotency key, the job table."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "FINAL_STATES",
    "MAX_KEY_LENGTH",
    "SERVER_SCHEMA",
    "Accepted",
    "JobStatus",
    "RequestError",
    "Work",
    "parse_job_request",
    "parse_key",
]

MAX_KEY_LENGTH = 255  # Stripe's limit; the IETF draft leaves the format to you
FINAL_STATES = ("succeeded", "failed", "cancelled")
# Visible ASCII without '"' and '\': a key fits an sf-string unescaped.
_KEY = re.compile(rf"[\x21\x23-\x5b\x5d-\x7e]{{1,{MAX_KEY_LENGTH}}}")


class RequestError(Exception):
    """The request is rejected before any job exists; ``status`` is the answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Accepted:
    """The job a POST maps to; ``replayed`` when its key was seen before."""

    job_id: str
    replayed: bool


@dataclass(frozen=True)
class JobStatus:
    """What the status resource knows about a job."""

    job_id: str
    state: str
    result: Any


Work = Callable[[Any], Any]
"""The long-running work: takes the request's ``input``, returns a JSON value."""

# --8<-- [start:server-schema]
SERVER_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id              TEXT PRIMARY KEY,
    idempotency_key TEXT UNIQUE,          -- stored before any work starts
    fingerprint     TEXT NOT NULL,        -- sha256 of the request body
    input           TEXT NOT NULL,
    callback_url    TEXT,
    state           TEXT NOT NULL DEFAULT 'accepted'
        CHECK (state IN ('accepted', 'running', 'succeeded', 'failed', 'cancelled')),
    result          TEXT,
    owner           TEXT,                 -- the process running it
    lease_until     REAL NOT NULL DEFAULT 0,  -- its claim, renewed while it runs
    created_at      REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS callbacks (    -- an outbox: callbacks owed to clients
    job_id     TEXT PRIMARY KEY REFERENCES jobs,
    webhook_id TEXT NOT NULL,
    url        TEXT NOT NULL,
    body       BLOB NOT NULL,
    state      TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0    -- next attempt, or a sender's lease end
);
"""
# --8<-- [end:server-schema]


def parse_job_request(body: bytes) -> tuple[Any, str | None]:
    """Validate before accepting: a JSON object with ``input``, maybe a callback."""
    try:
        data = json.loads(body)
    except ValueError as error:
        raise RequestError(400, "the body is not JSON") from error
    if not isinstance(data, dict) or "input" not in data:
        raise RequestError(400, 'the body must be an object with "input"')
    callback = data.get("callback_url")
    if callback is not None and not (
        isinstance(callback, str) and urlsplit(callback).scheme in ("http", "https")
    ):
        raise RequestError(400, "callback_url must be an http(s) URL")
    return data["input"], callback


def parse_key(header: str | None) -> str | None:
    """The key from an ``Idempotency-Key`` header, bare or as a quoted sf-string.

    Raises:
        RequestError: 400 for a key that is empty, too long or has characters
            outside visible ASCII.
    """
    if header is None:
        return None
    key = header.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not _KEY.fullmatch(key):
        raise RequestError(
            400, f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} characters"
        )
    return key
