"""A search backend on loopback that stops searching when its client leaves."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["HOLD_LIMIT", "SearchServer"]

HOLD_LIMIT = 30.0  # a held request gives up after this many seconds


class SearchServer:
    """A search backend on loopback whose answers the caller releases.

    `GET /search?q=<prefix>` answers with the words that start with the
    prefix, as a JSON list. With `hold` (the default) each search waits until
    `release(prefix)`. While it waits, the handler watches the connection: a
    client that disconnects cancels the search.

    Attributes:
        arrived: Queries in the order their requests arrived.
        answered: Queries whose answer was computed and sent.
        aborted: Queries whose client left first; no answer was computed.
        answered_late: Answers finished after a newer request had arrived:
            work done for a query that the client had already replaced.
    """

    def __init__(self, words: Iterable[str], *, hold: bool = True, limit: int = 5):
        self.words = sorted(set(words))
        self.hold = hold
        self.limit = limit
        self.arrived: list[str] = []
        self.answered: list[str] = []
        self.aborted: list[str] = []
        self.answered_late = 0
        self._gates: dict[str, asyncio.Event] = {}
        self._arrivals: dict[str, asyncio.Event] = {}
        self._settled: dict[str, asyncio.Event] = {}
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        """The base URL, `http://127.0.0.1:<port>/`."""
        assert self._server is not None, "use the server in `async with`"
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}/"

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            query = await self._read_query(reader)
            if query is None:
                await self._reply(writer, 404, {"error": "no such resource"})
            else:
                await self._search_unless_abandoned(query, reader, writer)
        except (OSError, ValueError, EOFError, asyncio.LimitOverrunError):
            pass  # a malformed request, or a client that vanished mid-request
        finally:
            writer.close()

    # --8<-- [start:server]
    async def _search_unless_abandoned(
        self, query: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Search for `query`, but stop as soon as the client disconnects."""
        number = self._arrive(query)
        search = asyncio.ensure_future(self._search(query))
        left = asyncio.ensure_future(reader.read(1))  # b"" once the client closes
        try:
            await asyncio.wait(
                {search, left}, timeout=HOLD_LIMIT, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for step in (search, left):
                step.cancel()  # does nothing to a step that has finished
            await asyncio.gather(search, left, return_exceptions=True)
        if search.cancelled():  # the client left first (or the hold ran out)
            self._settle(query, answered=False, late=False)
            return
        # Finished after a newer request arrived: work for a replaced query.
        self._settle(query, answered=True, late=number < len(self.arrived))
        await self._reply(writer, 200, search.result())

    # --8<-- [end:server]

    async def _search(self, query: str) -> list[str]:
        if self.hold:
            await _event(self._gates, query).wait()
        return [word for word in self.words if word.startswith(query)][: self.limit]

    async def _read_query(self, reader: asyncio.StreamReader) -> str | None:
        """The `q` of `GET /search?q=...`, or None for any other request."""
        async with asyncio.timeout(5):
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        method, target, *_ = head.split(" ", 2)
        parts = urlsplit(target)
        query = parse_qs(parts.query).get("q", [""])[0]
        if method != "GET" or parts.path != "/search" or not query:
            return None
        return query

    async def _reply(
        self, writer: asyncio.StreamWriter, status: int, data: Any
    ) -> None:
        body = json.dumps(data).encode()
        reason = {200: "OK", 404: "Not Found"}[status]
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode("ascii")
            + body
        )
        await writer.drain()

    def _arrive(self, query: str) -> int:
        self.arrived.append(query)
        _event(self._arrivals, query).set()
        return len(self.arrived)

    def _settle(self, query: str, *, answered: bool, late: bool) -> None:
        (self.answered if answered else self.aborted).append(query)
        self.answered_late += late
        _event(self._settled, query).set()

    def release(self, query: str) -> None:
        """Let the search for `query` finish (now, or as soon as it arrives)."""
        _event(self._gates, query).set()

    async def wait_arrived(self, query: str, timeout: float = 30.0) -> None:
        """Wait until a request for `query` has arrived (bounded)."""
        async with asyncio.timeout(timeout):
            await _event(self._arrivals, query).wait()

    async def wait_settled(self, query: str, timeout: float = 30.0) -> None:
        """Wait until the request for `query` was answered or aborted (bounded)."""
        async with asyncio.timeout(timeout):
            await _event(self._settled, query).wait()

    async def __aenter__(self) -> SearchServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.hold = False  # answer whatever is still held
        for gate in self._gates.values():
            gate.set()
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await self._server.wait_closed()


def _event(table: dict[str, asyncio.Event], key: str) -> asyncio.Event:
    """The event stored under `key`, created on first use."""
    return table.setdefault(key, asyncio.Event())
