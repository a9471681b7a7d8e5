"""The job service over HTTP: 202 with a status resource, 303 to the result,
DELETE to cancel."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from snippets.webhook_design.async_request_reply.jobs import (
    FINAL_STATES,
    RequestError,
    parse_key,
)
from snippets.webhook_design.async_request_reply.service import JobService
from snippets.webhook_design.async_request_reply.transport import (
    MAX_BODY_BYTES,
    BackgroundServer,
    json_body,
)

__all__ = ["JobServer"]

log = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    timeout = 10.0  # seconds a slow client may take per socket operation
    server: _JobHTTPServer

    # --8<-- [start:endpoint]
    def do_POST(self) -> None:
        if self.path != "/jobs":
            return self._send(404, {"error": "not found"})
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            return self._send(400, {"error": "Content-Length missing or too large"})
        body = self.rfile.read(int(length))
        service = self.server.service
        try:
            key = parse_key(self.headers.get("Idempotency-Key"))
            accepted = service.accept(body, key)
        except RequestError as error:
            return self._send(error.status, {"error": str(error)})
        except sqlite3.Error:
            log.exception("cannot store the job")
            return self._send(503, {"error": "try again"}, {"Retry-After": "1"})
        self._send(
            202,
            {"job_id": accepted.job_id, "state": "accepted"},
            {
                "Location": f"/status/{accepted.job_id}",
                "Retry-After": str(self.server.retry_after),
            },
        )

    # --8<-- [end:endpoint]

    # --8<-- [start:status]
    def do_GET(self) -> None:
        kind, _, job_id = self.path.strip("/").partition("/")
        found = self.server.service.status(job_id) if "/" not in job_id else None
        if kind not in ("status", "results") or found is None:
            return self._send(404, {"error": "no such job"})
        if kind == "results":
            if found.state != "succeeded":
                return self._send(404, {"error": f"no result: job is {found.state}"})
            return self._send(200, found.result)
        if found.state == "succeeded":  # 303: the client GETs the result
            return self._send(
                303, {"state": "succeeded"}, {"Location": f"/results/{job_id}"}
            )
        extra = {}
        if found.state not in FINAL_STATES:  # how long to wait before asking again
            extra["Retry-After"] = str(self.server.retry_after)
        body = {"job_id": job_id, "state": found.state}
        if found.state == "failed":
            body["error"] = found.result
        self._send(200, body, extra)

    # --8<-- [end:status]

    def do_DELETE(self) -> None:
        kind, _, job_id = self.path.strip("/").partition("/")
        state = self.server.service.cancel(job_id) if kind == "status" else None
        if state is None:
            return self._send(404, {"error": "no such job"})
        status = 200 if state == "cancelled" else 409  # 409: it already finished
        self._send(status, {"job_id": job_id, "state": state})

    def _send(
        self, status: int, data: Any, headers: Mapping[str, str] | None = None
    ) -> None:
        payload = json_body(data)
        try:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            log.info("client went away before the %d answer", status)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class _JobHTTPServer(ThreadingHTTPServer):
    daemon_threads = False  # server_close() waits for requests in flight
    service: JobService
    retry_after: int


class JobServer(BackgroundServer):
    """`JobService` over HTTP on a thread; a context manager that also closes
    the service.

    Args:
        service: The jobs.
        retry_after: Seconds in ``Retry-After`` while a job is not finished.
        host: Interface to listen on; port 0 picks a free port.
    """

    def __init__(
        self,
        service: JobService,
        *,
        retry_after: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.service = service
        httpd = _JobHTTPServer((host, port), _Handler)
        httpd.service = service
        httpd.retry_after = retry_after
        super().__init__(httpd)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        super().__exit__(exc_type, exc, tb)
        self.service.close()
