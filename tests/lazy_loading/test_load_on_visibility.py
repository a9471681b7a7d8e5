"""Tests for snippets/lazy_loading/load_on_visibility.py.

Every load is real HTTP on loopback: `SearchServer` is an `asyncio` server that
holds each answer until the test releases it, so answers come back in exactly
the order a test chooses. The tests wait on the server's own records (arrived,
answered, aborted) with bounded waits, never on sleeps. For the seeded typing
sessions, the expected counts are worked out here from the schedule alone and
compared with what the client showed and what the server did.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from snippets.lazy_loading.load_on_visibility import LatestLoader, LoadError, fetch_json
from snippets.lazy_loading.load_on_visibility.demo import LOADERS, OVERTAKEN
from snippets.lazy_loading.load_on_visibility.naive import NaiveLoader
from snippets.lazy_loading.load_on_visibility.server import SearchServer
from snippets.support.lazy_loading_sessions import (
    WORDS,
    Outcome,
    SearchBox,
    TypingSession,
    run_session,
    run_sessions,
    search_client,
    typing_sessions,
)

SESSIONS = typing_sessions(60, seed=11)  # not the demo's seed


@pytest.fixture(scope="module", autouse=True)
def server_version() -> None:
    """Log what the server runs on (pytest -s shows it)."""
    print(f"\nsearch server: asyncio.start_server on CPython {sys.version.split()[0]}")


@dataclass(frozen=True)
class Expected:
    """What the schedule alone says must happen in one session."""

    sent: int
    stale_if_unchecked: bool  # the last answer to arrive is not the last query
    superseded: int  # requests whose answer is due after a newer request


def expect(session: TypingSession, *, debounce: bool = False) -> Expected:
    """Work out one session's outcome from its bursts and latencies."""
    typed = [(b, q) for b, burst in enumerate(session.bursts) for q in burst]
    if debounce:  # only the last keystroke of each burst sends a request
        typed = [(b, burst[-1]) for b, burst in enumerate(session.bursts)]
    due = {q: b + session.latency[q] for b, q in typed}
    # The driver releases answers due before a burst, then types the burst.
    superseded = sum(
        1
        for i, (_, q) in enumerate(typed)
        if i + 1 < len(typed) and typed[i + 1][0] <= due[q]
    )
    last_to_arrive = max(due, key=lambda q: (due[q], q))
    return Expected(len(typed), last_to_arrive != session.last, superseded)


def run(label: str, sessions: list[TypingSession]) -> list[Outcome]:
    return asyncio.run(run_sessions(LOADERS[label], sessions))


# -- see it break ------------------------------------------------------------- #


def test_a_slow_old_answer_replaces_the_newer_one() -> None:
    got = asyncio.run(run_session(NaiveLoader, OVERTAKEN))
    assert got.shown_for == "co"  # the user typed "con" last
    assert got.stale
    assert (got.answered, got.answered_late, got.aborted) == (2, 1, 0)


def test_without_the_pattern_seeded_sessions_end_on_stale_results() -> None:
    expected = [expect(session) for session in SESSIONS]
    got = run("apply every answer", SESSIONS)
    assert [o.stale for o in got] == [e.stale_if_unchecked for e in expected]
    assert sum(o.stale for o in got) > 0
    assert [o.sent for o in got] == [e.sent for e in expected]
    # Every superseded request was still computed and sent: wasted work.
    assert [o.answered_late for o in got] == [e.superseded for e in expected]
    assert sum(o.answered_late for o in got) > 0
    assert sum(o.aborted for o in got) == 0


# -- the pattern holds ------------------------------------------------------- #


def test_latest_wins_alone_shows_no_stale_result_but_wastes_work() -> None:
    expected = [expect(session) for session in SESSIONS]
    got = run("latest-wins", SESSIONS)
    assert [o.shown_for for o in got] == [s.last for s in SESSIONS]
    assert [o.answered_late for o in got] == [e.superseded for e in expected]
    assert sum(o.aborted for o in got) == 0


def test_cancelling_superseded_loads_stops_the_work_on_the_server() -> None:
    expected = [expect(session) for session in SESSIONS]
    got = run("latest-wins + cancel", SESSIONS)
    assert [o.shown_for for o in got] == [s.last for s in SESSIONS]
    assert sum(o.answered_late for o in got) == 0
    # Each superseded request was abandoned, and the server saw it go.
    assert [o.aborted for o in got] == [e.superseded for e in expected]
    assert [o.answered for o in got] == [e.sent - e.superseded for e in expected]


def test_debounce_sends_one_request_per_burst() -> None:
    expected = [expect(session, debounce=True) for session in SESSIONS]
    got = run("  + debounce", SESSIONS)
    assert [o.sent for o in got] == [len(s.bursts) for s in SESSIONS]
    assert sum(o.sent for o in got) < sum(expect(s).sent for s in SESSIONS)
    assert [o.shown_for for o in got] == [s.last for s in SESSIONS]
    assert [o.aborted for o in got] == [e.superseded for e in expected]
    assert sum(o.answered_late for o in got) == 0


# -- LatestLoader, one behaviour at a time ------------------------------------ #


Fetch = Callable[[str], Awaitable[list[str]]]


def test_a_superseded_load_is_cancelled_and_its_connection_closed() -> None:
    async def scenario() -> tuple[SearchServer, LatestLoader[str, list[str]], bool]:
        async with SearchServer(WORDS) as server:
            box = SearchBox()
            loader = LatestLoader(search_client(server.url), box.show)
            old = loader.request("ca")
            await server.wait_arrived("ca")
            new = loader.request("cac")
            await server.wait_arrived("cac")
            with pytest.raises(asyncio.CancelledError):
                await old  # the old load saw CancelledError
            await server.wait_settled("ca")  # the server saw the client leave
            server.release("cac")
            await asyncio.wait_for(new, timeout=5)
            return server, loader, box.results == ["cache"]

    server, loader, shown = asyncio.run(scenario())
    assert server.aborted == ["ca"]
    assert server.answered == ["cac"]
    assert (loader.cancelled, loader.shown, loader.discarded) == (1, 1, 0)
    assert shown


def test_cancel_drops_the_load_and_the_server_stops_searching() -> None:
    async def scenario() -> tuple[SearchServer, SearchBox, bool]:
        async with SearchServer(WORDS) as server:
            box = SearchBox()
            loader = LatestLoader(search_client(server.url), box.show)
            task = loader.request("vis")
            await server.wait_arrived("vis")
            loader.cancel()  # the panel was closed before the answer came
            await server.wait_settled("vis")
            await asyncio.wait({task}, timeout=5)
            return server, box, task.cancelled()

    server, box, cancelled = asyncio.run(scenario())
    assert cancelled
    assert server.aborted == ["vis"]
    assert server.answered == []
    assert box.renders == 0


def test_a_timed_out_load_shows_an_error_and_frees_the_server() -> None:
    errors: list[tuple[str, Exception]] = []

    async def scenario() -> SearchServer:
        async with SearchServer(WORDS) as server:  # never released: it hangs
            loader = LatestLoader(
                search_client(server.url),
                SearchBox().show,
                show_error=lambda key, error: errors.append((key, error)),
                timeout=0.2,
            )
            task = loader.request("late")
            await asyncio.wait_for(task, timeout=5)
            await server.wait_settled("late")
            return server

    server = asyncio.run(scenario())
    assert [(key, type(error)) for key, error in errors] == [("late", TimeoutError)]
    assert server.aborted == ["late"]


def broken_for(word: str, server: SearchServer) -> Fetch:
    """A search that asks a missing resource (HTTP 404) for `word`."""
    search = search_client(server.url)

    async def fetch(query: str) -> list[str]:
        if query == word:
            await fetch_json(f"{server.url}missing")
        return await search(query)

    return fetch


def test_the_error_of_a_superseded_load_is_not_shown() -> None:
    errors: list[Exception] = []

    async def scenario() -> tuple[LatestLoader[str, list[str]], SearchBox]:
        async with SearchServer(WORDS) as server:
            box = SearchBox()
            loader = LatestLoader(
                broken_for("bad", server),
                box.show,
                show_error=lambda key, error: errors.append(error),
                cancel_superseded=False,
            )
            bad = loader.request("bad")
            good = loader.request("lat")  # newer, while "bad" is in flight
            await asyncio.wait_for(bad, timeout=5)  # fails with 404, dropped
            server.release("lat")
            await asyncio.wait_for(good, timeout=5)
            return loader, box

    loader, box = asyncio.run(scenario())
    assert errors == []
    assert (loader.discarded, loader.shown) == (1, 1)
    assert (box.shown_for, box.results) == ("lat", ["latency"])


def test_the_error_of_the_newest_load_is_shown_or_raised() -> None:
    errors: list[Exception] = []

    async def scenario() -> BaseException | None:
        async with SearchServer(WORDS) as server:
            shown = LatestLoader(
                broken_for("bad", server),
                SearchBox().show,
                show_error=lambda key, error: errors.append(error),
            )
            await asyncio.wait_for(shown.request("bad"), timeout=5)
            raised = LatestLoader(broken_for("bad", server), SearchBox().show)
            task = raised.request("bad")
            await asyncio.wait({task}, timeout=5)
            return task.exception()

    raised = asyncio.run(scenario())
    assert [str(error).endswith("HTTP 404") for error in errors] == [True]
    assert isinstance(raised, LoadError)


def test_aclose_cancels_every_load_and_the_server_sees_each_one_go() -> None:
    async def scenario() -> tuple[SearchServer, list[bool]]:
        async with SearchServer(WORDS) as server:
            loader = LatestLoader(
                search_client(server.url), SearchBox().show, cancel_superseded=False
            )
            tasks = [loader.request(query) for query in ("d", "de", "dea")]
            for query in ("d", "de", "dea"):
                await server.wait_arrived(query)
            await asyncio.wait_for(loader.aclose(), timeout=5)
            for query in ("d", "de", "dea"):
                await server.wait_settled(query)
            return server, [task.cancelled() for task in tasks]

    server, cancelled = asyncio.run(scenario())
    assert cancelled == [True, True, True]
    assert sorted(server.aborted) == ["d", "de", "dea"]


def test_fetch_json_reads_answers_and_reports_errors() -> None:
    async def scenario() -> tuple[object, str, str]:
        async with SearchServer(WORDS, hold=False) as server:
            words = await fetch_json(f"{server.url}search?q=co")
            with pytest.raises(LoadError) as missing:
                await fetch_json(f"{server.url}nothing-here")
            url = server.url
        with pytest.raises(OSError) as refused:  # the server is gone
            await fetch_json(f"{url}search?q=co")
        return words, str(missing.value), type(refused.value).__name__

    words, missing, refused = asyncio.run(scenario())
    assert words == ["concurrency", "coroutine"]
    assert missing.endswith("HTTP 404")
    assert refused == "ConnectionRefusedError"


# -- the output the page shows ------------------------------------------------ #
