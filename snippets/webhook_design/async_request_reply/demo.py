"""The cases the async request-reply page shows.

``python -m snippets.webhook_design.async_request_reply.demo <case>``, where
case is ``race-record-after``, ``race-pre-registered``, ``retry-keyless``,
``retry-keyed``, ``poll`` or ``exchange``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from snippets.support.cases import Case, run_cases
from snippets.support.webhook_design_async import (
    ATTEMPTS,
    TIMEOUT,
    early_callback,
    exchange,
    polling,
    retried_post,
)
from snippets.webhook_design.async_request_reply import JobClient, Response
from snippets.webhook_design.async_request_reply.broken import (
    KeylessClient,
    RecordAfterResponseClient,
)

__all__: list[str] = []


def show_early_callback(client_type: type[JobClient]) -> list[str]:
    with tempfile.TemporaryDirectory() as name:
        result = early_callback(Path(name), client_type)
    [outcome] = result.outcome
    dropped = " (answered 404, dropped)" if outcome == "unknown" else ""
    return [
        f"{client_type.__name__}: the callback arrived before the 202 was stored",
        f"callback: {outcome}{dropped}",
        f"request state on the client: {result.client_state}"
        f" (the server says {result.server_state})",
    ]


def show_retry(client_type: type[JobClient]) -> list[str]:
    with tempfile.TemporaryDirectory() as name:
        result = retried_post(Path(name), client_type)
    urls = {f"/status/{answer.job_id}" for answer in result.answers}
    return [
        f"{client_type.__name__}: the first answer came after the"
        f" {TIMEOUT:.0f} s timeout",
        f"POSTs the server received: {len(result.answers)}",
        f"jobs created: {result.jobs}, work runs: {result.runs}",
        f"status URLs handed out: {len(urls)} distinct",
    ]


def show_poll() -> list[str]:
    with tempfile.TemporaryDirectory() as name:
        result = polling(Path(name))
    return [
        f"callbacks to a closed port: {result.sent['failed']} not delivered"
        f" ({ATTEMPTS} attempts)",
        f"polls: {', then '.join(result.polls)}",
        f"waited between polls: {result.delays[0]:.0f} s (Retry-After)",
        f"state: {result.state}, result: {json.dumps(result.result)}",
    ]


def _line(label: str, answer: Response, names: dict[str, str]) -> str:
    text = f"{label:<34} -> {answer.status}"
    for header in ("location", "retry-after"):
        if header in answer.headers:
            value = answer.headers[header]
            for job_id, name in names.items():
                value = value.replace(job_id, name)
            text += f"  {header.title()}: {value}"
    body = answer.json()
    if answer.status != 202 and "state" in body:
        text += f"  state={body['state']}"
    if "sum" in body:
        text += f"  {json.dumps(body)}"
    return text


def show_exchange() -> list[str]:
    with tempfile.TemporaryDirectory() as name:
        result = exchange(Path(name))
    return [_line(label, answer, result.names) for label, answer in result.steps]


CASES: dict[str, Case] = {
    "race-record-after": lambda: show_early_callback(RecordAfterResponseClient),
    "race-pre-registered": lambda: show_early_callback(JobClient),
    "retry-keyless": lambda: show_retry(KeylessClient),
    "retry-keyed": lambda: show_retry(JobClient),
    "poll": show_poll,
    "exchange": show_exchange,
}

if __name__ == "__main__":
    sys.exit(run_cases(CASES))
