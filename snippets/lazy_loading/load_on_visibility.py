"""Load on visibility: show the answer to the newest request, stop the rest.

A client that loads content when it becomes needed (a tab opens, a filter
changes, a search box is typed into) starts loads that overlap. Two things go
wrong: a slow answer to an old request arrives after the answer to a newer one
and replaces it, and the server keeps working on requests nobody waits for.

* `LatestLoader` numbers every request with a generation and shows an answer
  only while its generation is still the newest (latest-wins). It cancels the
  superseded load, which closes that load's connection, and it can debounce a
  burst of requests into one.
* `NaiveLoader` is the broken version, kept for the tests and the demo.
* `fetch_json` is a small cancellable HTTP client. `SearchServer` is a search
  backend on loopback that holds each answer until it is released, stops
  searching when its client disconnects, and counts the work it did for
  nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import parse_qs, quote, urlsplit

K = TypeVar("K")
T = TypeVar("T")

MAX_BODY = 1 << 20  # bytes a client accepts in one answer
HOLD_LIMIT = 30.0  # a held request gives up after this many seconds


class LoadError(Exception):
    """The server answered with an error status or an unreadable body."""


def _parse_head(head: str) -> tuple[int, dict[str, str]]:
    """Status code and lower-cased headers of an HTTP/1.1 response head."""
    status_line, *lines = head.rstrip("\r\n").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    pairs = (line.split(":", 1) for line in lines if ":" in line)
    return status, {name.strip().lower(): value.strip() for name, value in pairs}


# --8<-- [start:fetch]
async def fetch_json(url: str) -> Any:
    """GET `url` on a fresh connection and return the decoded JSON body.

    The connection is closed on every way out, cancellation included, so a
    server that watches its connections sees an abandoned request at once.
    Bound the call with a timeout (`LatestLoader` does).

    Raises:
        LoadError: A status other than 200, or a body that is not JSON.
        OSError: The connection was refused or reset.
    """
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(
            f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Connection: close\r\n\r\n".encode("ascii")
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status, headers = _parse_head(head.decode("latin-1"))
        length = int(headers.get("content-length", "-1"))
        if not 0 <= length <= MAX_BODY:
            raise LoadError(f"{url}: Content-Length {length}")
        body = await reader.readexactly(length)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
        raise LoadError(f"{url}: {type(e).__name__}") from e
    finally:
        writer.close()  # also when cancelled: the server reads end-of-file
    if status != 200:
        raise LoadError(f"{url}: HTTP {status}")
    try:
        return json.loads(body)
    except ValueError as error:
        raise LoadError(f"{url}: the body is not JSON") from error


# --8<-- [end:fetch]


class Loader(Protocol):
    """What the demo needs from a loader: start a request, and shut down."""

    debounce: float

    def request(self, key: str) -> asyncio.Task[None]: ...

    async def aclose(self) -> None: ...


# --8<-- [start:naive]
class NaiveLoader(Generic[K, T]):
    """The broken version: one load per request, and every answer is shown.

    Whichever answer arrives last stays on screen, even when it answers an
    older request. Every load runs to the end, needed or not.
    """

    debounce = 0.0

    def __init__(
        self, fetch: Callable[[K], Awaitable[T]], show: Callable[[K, T], None]
    ) -> None:
        self._fetch = fetch
        self._show = show
        self._tasks: set[asyncio.Task[None]] = set()

    def request(self, key: K) -> asyncio.Task[None]:
        """Start loading `key`; its answer is shown whenever it arrives."""
        task = asyncio.create_task(self._load(key))
        self._tasks.add(task)  # the event loop keeps only a weak reference
        task.add_done_callback(self._tasks.discard)
        return task

    async def _load(self, key: K) -> None:
        self._show(key, await self._fetch(key))  # no check: last answer wins

    async def aclose(self) -> None:
        """Cancel the loads still running and wait for them."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


# --8<-- [end:naive]


# --8<-- [start:latest]
class LatestLoader(Generic[K, T]):
    """Loads on demand and shows only the answer to the newest request.

    Every `request()` starts a new generation. An answer (or an error) is
    shown only if its generation is still the newest when it arrives, so a
    slow old answer can never replace a newer one. With `cancel_superseded`
    the older load is cancelled too, which closes its connection.

    Args:
        fetch: Loads one key. It must give up when its task is cancelled.
        show: Puts an answer on screen; called for the newest request only.
        show_error: Called when the newest request fails or times out. When
            None, the exception ends that request's task.
        timeout: Seconds one load may take, debounce not included.
        debounce: Seconds to wait before sending; a newer request in that
            time replaces this one without a request to the server.
        cancel_superseded: Cancel a load as soon as a newer request starts.
    """

    def __init__(
        self,
        fetch: Callable[[K], Awaitable[T]],
        show: Callable[[K, T], None],
        *,
        show_error: Callable[[K, Exception], None] | None = None,
        timeout: float = 10.0,
        debounce: float = 0.0,
        cancel_superseded: bool = True,
    ) -> None:
        self._fetch, self._show, self._show_error = fetch, show, show_error
        self._timeout, self.debounce = timeout, debounce
        self._cancel_superseded = cancel_superseded
        self.generation = 0
        self.shown = self.discarded = self.cancelled = 0
        self._current: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # --8<-- [end:latest]

    # --8<-- [start:request]
    def request(self, key: K) -> asyncio.Task[None]:
        """Load `key` and show it, replacing whatever was requested before."""
        self.generation += 1
        if self._cancel_superseded and self._current is not None:
            self._current.cancel()  # does nothing if it has finished
        task = asyncio.create_task(self._load(self.generation, key))
        self._current = task
        self._tasks.add(task)  # the event loop keeps only a weak reference
        task.add_done_callback(self._finished)
        return task

    def cancel(self) -> None:
        """Want nothing any more: the panel closed, the row scrolled away."""
        self.generation += 1  # an answer already on its way is not shown
        if self._current is not None:
            self._current.cancel()
            self._current = None

    # --8<-- [end:request]

    # --8<-- [start:load]
    async def _load(self, generation: int, key: K) -> None:
        try:
            if self.debounce > 0:
                await asyncio.sleep(self.debounce)
                if generation != self.generation:
                    return  # replaced during the pause: nothing was sent
            async with asyncio.timeout(self._timeout):
                result = await self._fetch(key)
        except Exception as error:  # includes TimeoutError, not cancellation
            if generation != self.generation:
                self.discarded += 1  # a newer request exists: drop this error
                return
            if self._show_error is None:
                raise
            self._show_error(key, error)
            return
        # Nothing is awaited between this check and show(): no other task
        # can start a newer request in between.
        if generation != self.generation:
            self.discarded += 1  # latest-wins: a newer request exists
            return
        self.shown += 1
        self._show(key, result)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():  # also counts tasks cancelled before they ran
            self.cancelled += 1

    # --8<-- [end:load]

    async def aclose(self) -> None:
        """Cancel every load still running and wait until they have ended."""
        self.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


# --------------------------------------------------------------------------- #
# A search backend on loopback
# --------------------------------------------------------------------------- #


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

    async def wait_arrived(self, query: str, timeout: float = 5.0) -> None:
        """Wait until a request for `query` has arrived (bounded)."""
        async with asyncio.timeout(timeout):
            await _event(self._arrivals, query).wait()

    async def wait_settled(self, query: str, timeout: float = 5.0) -> None:
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


def search_client(base_url: str) -> Callable[[str], Awaitable[list[str]]]:
    """A `fetch` function for the loaders: search `base_url` for a prefix."""

    async def search(query: str) -> list[str]:
        data = await fetch_json(f"{base_url}search?q={quote(query)}")
        if not isinstance(data, list) or not all(isinstance(w, str) for w in data):
            raise LoadError(f"search {query!r}: not a list of words")
        return data

    return search


@dataclass
class SearchBox:
    """What the user sees: the query whose results are on screen."""

    shown_for: str | None = None
    results: list[str] = field(default_factory=list)
    renders: int = 0

    def show(self, query: str, results: list[str]) -> None:
        """Put `results` on screen as the answer to `query`."""
        self.shown_for, self.results = query, results
        self.renders += 1


# --------------------------------------------------------------------------- #
# Seeded typing sessions, run against the real server
# --------------------------------------------------------------------------- #

WORDS = (
    "cache",
    "cancel",
    "concurrency",
    "coroutine",
    "deadline",
    "debounce",
    "generation",
    "latency",
    "loader",
    "prefetch",
    "viewport",
    "visibility",
)
LoaderFactory = Callable[
    [Callable[[str], Awaitable[list[str]]], Callable[[str, list[str]], None]],
    Loader,
]


@dataclass(frozen=True)
class TypingSession:
    """A user typing into a search box, in bursts separated by pauses.

    Burst `b` is typed at time `b` (in pauses); its keystrokes follow each
    other faster than any answer. The answer to `query` comes back
    `latency[query]` pauses after the query was typed.
    """

    bursts: tuple[tuple[str, ...], ...]
    latency: dict[str, float]

    @property
    def last(self) -> str:
        """The query the user typed last: the one whose results they want."""
        return self.bursts[-1][-1]

    def answers(self) -> list[tuple[float, str]]:
        """(time, query) of every answer, in the order they come back."""
        return sorted(
            (typed + self.latency[query], query)
            for typed, burst in enumerate(self.bursts)
            for query in burst
        )


def typing_sessions(count: int, seed: int) -> list[TypingSession]:
    """`count` seeded sessions: a prefix of a word, typed in random bursts."""
    rng = random.Random(seed)
    sessions = []
    for _ in range(count):
        word = rng.choice(WORDS)
        queries = [word[:n] for n in range(1, rng.randint(3, min(7, len(word))) + 1)]
        bursts: list[tuple[str, ...]] = []
        burst: list[str] = []
        for query in queries:
            burst.append(query)
            if query == queries[-1] or rng.random() < 0.5:  # the user pauses
                bursts.append(tuple(burst))
                burst = []
        latency = {query: round(rng.uniform(0.1, 2.5), 3) for query in queries}
        sessions.append(TypingSession(tuple(bursts), latency))
    return sessions


@dataclass(frozen=True)
class Outcome:
    """What one session left on screen, and what the server did for it."""

    shown_for: str | None
    stale: bool
    sent: int
    answered: int
    answered_late: int
    aborted: int


async def run_session(make: LoaderFactory, session: TypingSession) -> Outcome:
    """Type `session` into a search box; the server answers in its order.

    Between bursts, every answer due before the next burst is released, one
    at a time, and the driver waits until the client and the server have
    both finished with it, so every run takes the same path.
    """
    async with SearchServer(WORDS) as server:
        box = SearchBox()
        loader = make(search_client(server.url), box.show)
        tasks: dict[str, asyncio.Task[None]] = {}
        due = deque(session.answers())
        try:
            for typed_at, burst in enumerate(session.bursts):
                while due and due[0][0] < typed_at:  # answers during the pause
                    query = due.popleft()[1]
                    await _answer(server, tasks[query], query)
                for query in burst:
                    tasks[query] = loader.request(query)
                    if not loader.debounce:
                        await server.wait_arrived(query)
                if loader.debounce:
                    await server.wait_arrived(burst[-1])
            while due:
                query = due.popleft()[1]
                await _answer(server, tasks[query], query)
        finally:
            await loader.aclose()
        return Outcome(
            shown_for=box.shown_for,
            stale=box.shown_for != session.last,
            sent=len(server.arrived),
            answered=len(server.answered),
            answered_late=server.answered_late,
            aborted=len(server.aborted),
        )


async def run_sessions(
    make: LoaderFactory, sessions: Sequence[TypingSession], parallel: int = 20
) -> list[Outcome]:
    """Run sessions side by side; each has its own server, loader and box."""
    gate = asyncio.Semaphore(parallel)

    async def run(session: TypingSession) -> Outcome:
        async with gate:
            return await run_session(make, session)

    return list(await asyncio.gather(*(run(session) for session in sessions)))


async def _answer(server: SearchServer, task: asyncio.Task[None], query: str) -> None:
    """Let the answer to `query` come back, and wait until it has landed."""
    if not task.done() and not task.cancelling():
        server.release(query)
    if query in server.arrived:
        await server.wait_settled(query)  # answered, or the client left
    await asyncio.wait({task}, timeout=5)  # shown, discarded or cancelled


# --8<-- [start:loaders]
LOADERS: dict[str, LoaderFactory] = {
    "apply every answer": NaiveLoader,
    "latest-wins": lambda fetch, show: LatestLoader(
        fetch, show, cancel_superseded=False
    ),
    "latest-wins + cancel": LatestLoader,
    "  + debounce": lambda fetch, show: LatestLoader(fetch, show, debounce=0.05),
}
# --8<-- [end:loaders]
# Typed "co", then "con" after a pause; "con" is answered first.
OVERTAKEN = TypingSession((("co",), ("con",)), {"co": 2.0, "con": 0.5})


async def two_queries() -> list[str]:
    """One old answer overtaken by a newer one, with each loader."""
    lines = ['typed "co", then "con"; the server answers "con" first']
    for label, make in list(LOADERS.items())[:3]:
        got = await run_session(make, OVERTAKEN)
        shown = f'"{got.shown_for}"' + (" stale" if got.stale else "")
        lines.append(
            f"{label:<21} on screen: {shown:<12} server: "
            f"{got.answered} answered ({got.answered_late} late), {got.aborted} aborted"
        )
    return lines


# --8<-- [start:demo]
async def many_sessions(count: int = 100, seed: int = 7) -> list[str]:
    """Seeded typing sessions, each loader against the same schedule."""
    sessions = typing_sessions(count, seed)
    keys = sum(len(burst) for s in sessions for burst in s.bursts)
    lines = [
        f"{count} typing sessions (seed {seed}), {keys} keystrokes",
        f"{'loader':<21}{'requests':>9}{'stale':>7}{'answered late':>15}{'aborted':>9}",
    ]
    for label, make in LOADERS.items():
        got = await run_sessions(make, sessions)
        lines.append(
            f"{label:<21}{sum(o.sent for o in got):>9}{sum(o.stale for o in got):>7}"
            f"{sum(o.answered_late for o in got):>15}{sum(o.aborted for o in got):>9}"
        )
    return lines


if __name__ == "__main__":
    print(*asyncio.run(two_queries()), sep="\n")
    print()
    print(*asyncio.run(many_sessions()), sep="\n")
# --8<-- [end:demo]
