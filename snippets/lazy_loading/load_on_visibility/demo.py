"""The cases the load-on-visibility page shows.

Run one with ``python -m snippets.lazy_loading.load_on_visibility.demo
overtaken`` (or ``sessions``).
"""

from __future__ import annotations

import asyncio
import sys

from snippets.lazy_loading.load_on_visibility.loader import LatestLoader
from snippets.lazy_loading.load_on_visibility.naive import NaiveLoader
from snippets.support.cases import run_cases
from snippets.support.lazy_loading_sessions import (
    LoaderFactory,
    TypingSession,
    run_session,
    run_sessions,
    typing_sessions,
)

__all__: list[str] = []


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


# --8<-- [end:demo]


if __name__ == "__main__":
    sys.exit(
        run_cases(
            {
                "overtaken": lambda: asyncio.run(two_queries()),
                "sessions": lambda: asyncio.run(many_sessions()),
            }
        )
    )
