"""Seeded typing sessions for the load-on-visibility demo and tests.

A `TypingSession` is a user typing a prefix of a word into a search box in
bursts; `run_session` types it against a real `SearchServer` on loopback,
releasing each answer in the order the session's latencies say, and reports
what stayed on screen and what the server did.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from snippets.lazy_loading.load_on_visibility.fetch import LoadError, fetch_json
from snippets.lazy_loading.load_on_visibility.loader import Loader
from snippets.lazy_loading.load_on_visibility.server import SearchServer

__all__ = [
    "WORDS",
    "LoaderFactory",
    "Outcome",
    "SearchBox",
    "TypingSession",
    "run_session",
    "run_sessions",
    "search_client",
    "typing_sessions",
]


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
    await asyncio.wait({task}, timeout=30)  # shown, discarded or cancelled
