"""The cases the SQLAlchemy asyncio page shows, on a real PostgreSQL.

    python -m snippets.lazy_loading.sqlalchemy_async_lazy_loading.demo CASE

Cases: ``missing_greenlet``, ``expired``, ``raise``, ``queries``. Each
creates a schema of its own with three authors of two books each.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from sqlalchemy.exc import MissingGreenlet, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from snippets.lazy_loading.sqlalchemy_async_lazy_loading import (
    Books,
    QueryCounter,
    books_awaitable_attrs,
    books_joinedload,
    books_run_sync,
    books_selectinload,
    books_strict,
    make_sessions,
)
from snippets.lazy_loading.sqlalchemy_async_lazy_loading.naive import (
    books_lazy,
    books_strict_forgotten,
    rename_then_read,
)
from snippets.support.cases import run_cases
from snippets.support.lazy_loading_sqlalchemy import (
    AUTHORS,
    add_authors,
    database,
    error_lines,
)

__all__: list[str] = []

Loader = Callable[[AsyncSession], Awaitable[Books]]
FIXES: dict[str, Loader] = {
    "awaitable_attrs (lazy, explicit)": books_awaitable_attrs,
    "run_sync (lazy, in the greenlet)": books_run_sync,
    "selectinload": books_selectinload,
    "joinedload": books_joinedload,
    'lazy="raise" + selectinload': books_strict,
}


async def _attempt(engine: AsyncEngine, loader: Loader) -> tuple[int, list[str]]:
    """Statements sent, and what the loader returned or raised."""
    counter = QueryCounter(engine)
    with counter.counting() as statements:
        async with make_sessions(engine)() as session:
            try:
                books = await loader(session)
            except Exception as error:
                return len(statements), error_lines(error)
    titles = sum(len(t) for t in books.values())
    return len(statements), [f"loaded {len(books)} authors, {titles} books"]


async def _missing_greenlet() -> list[str]:
    async with database() as engine:
        sent, outcome = await _attempt(engine, books_lazy)
        async with make_sessions(engine)() as session:
            try:
                await books_lazy(session)
            except StatementError as error:
                orig = type(error.orig).__name__
                caught = isinstance(error, MissingGreenlet)
    return [
        f"{AUTHORS} authors, then author.books on the first one:",
        *(f"  {line}" for line in outcome),
        f"error.orig: {orig}; isinstance(error, MissingGreenlet): {caught}",
        f"statements sent: {sent} (the lazy SELECT was never sent)",
    ]


async def _expired() -> list[str]:
    lines = []
    async with database() as engine:
        cases: dict[str, async_sessionmaker[AsyncSession]] = {
            "expire_on_commit=True (default)": async_sessionmaker(engine),
            "expire_on_commit=False": make_sessions(engine),
        }
        for label, sessions in cases.items():
            try:
                name = await rename_then_read(sessions)
                lines += [f"{label}: read {name!r} after commit"]
            except Exception as error:
                lines += [f"{label}:", *(f"  {e}" for e in error_lines(error))]
    return lines


async def _raise() -> list[str]:
    async with database() as engine:
        sent, forgot = await _attempt(engine, books_strict_forgotten)
        sent_ok, fixed = await _attempt(engine, books_strict)
    return [
        'lazy="raise", no loader option:',
        *(f"  {line}" for line in forgot),
        f"  statements: {sent}",
        'lazy="raise" with selectinload:',
        *(f"  {line}" for line in fixed),
        f"  statements: {sent_ok}",
    ]


async def _queries() -> list[str]:
    more = 7
    counts: dict[str, list[int]] = {label: [] for label in FIXES}
    async with database() as engine:
        for _ in range(2):
            for label, loader in FIXES.items():
                sent, _ = await _attempt(engine, loader)
                counts[label].append(sent)
            await add_authors(engine, AUTHORS + 1, more)
    width = max(len(label) for label in FIXES)
    head = (
        f"{'loaded with':<{width}}  {AUTHORS:>2} authors  {AUTHORS + more:>2} authors"
    )
    return [
        head,
        *(f"{label:<{width}}  {a:>10}  {b:>10}" for label, (a, b) in counts.items()),
    ]


def main(case: Callable[[], Coroutine[Any, Any, list[str]]]) -> Callable[[], list[str]]:
    return lambda: asyncio.run(case())


if __name__ == "__main__":
    sys.exit(
        run_cases(
            {
                "missing_greenlet": main(_missing_greenlet),
                "expired": main(_expired),
                "raise": main(_raise),
                "queries": main(_queries),
            }
        )
    )
