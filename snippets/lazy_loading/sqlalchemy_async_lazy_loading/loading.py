"""Ways to have an author's books loaded before async code touches them.

Each function returns ``{author name: [book titles]}`` for every author and
issues its queries through the `AsyncSession` it is given.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, joinedload, selectinload

from snippets.lazy_loading.sqlalchemy_async_lazy_loading.models import (
    Author,
    StrictAuthor,
)

__all__ = [
    "Books",
    "QueryCounter",
    "books_awaitable_attrs",
    "books_joinedload",
    "books_run_sync",
    "books_selectinload",
    "books_strict",
    "make_sessions",
]

Books = dict[str, list[str]]


# --8<-- [start:sessions]
def make_sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose objects stay readable after commit.

    With the default ``expire_on_commit=True`` every attribute is expired by
    ``commit()``, and the next plain attribute access would have to query.
    """
    return async_sessionmaker(engine, expire_on_commit=False)


# --8<-- [end:sessions]


# --8<-- [start:selectinload]
async def books_selectinload(session: AsyncSession) -> Books:
    """Two queries: the authors, then the books of all of them (IN ...)."""
    authors = await session.scalars(
        select(Author).options(selectinload(Author.books)).order_by(Author.id)
    )
    return {a.name: [b.title for b in a.books] for a in authors}


# --8<-- [end:selectinload]


# --8<-- [start:joinedload]
async def books_joinedload(session: AsyncSession) -> Books:
    """One query with a LEFT OUTER JOIN; rows repeat per book, so unique()."""
    result = await session.scalars(
        select(Author).options(joinedload(Author.books)).order_by(Author.id)
    )
    return {a.name: [b.title for b in a.books] for a in result.unique()}


# --8<-- [end:joinedload]


# --8<-- [start:strict]
async def books_strict(session: AsyncSession) -> Books:
    """The strict mapping: the loader option is required, not optional."""
    authors = await session.scalars(
        select(StrictAuthor)
        .options(selectinload(StrictAuthor.books))
        .order_by(StrictAuthor.id)
    )
    return {a.name: [b.title for b in a.books] for a in authors}


# --8<-- [end:strict]


# --8<-- [start:awaitable-attrs]
async def books_awaitable_attrs(session: AsyncSession) -> Books:
    """Lazy loading made explicit: one await, one query, per author (N+1)."""
    authors = (await session.scalars(select(Author).order_by(Author.id))).all()
    return {a.name: [b.title for b in await a.awaitable_attrs.books] for a in authors}


# --8<-- [end:awaitable-attrs]


# --8<-- [start:run-sync]
def _books_sync(session: Session) -> Books:
    """Ordinary synchronous ORM code: lazy loads work inside run_sync."""
    authors = session.scalars(select(Author).order_by(Author.id)).all()
    return {a.name: [b.title for b in a.books] for a in authors}


async def books_run_sync(session: AsyncSession) -> Books:
    """Run sync code in SQLAlchemy's greenlet: still one query per author."""
    return await session.run_sync(_books_sync)


# --8<-- [end:run-sync]


# --8<-- [start:counter]
@dataclass
class QueryCounter:
    """Count the statements an engine sends, to catch N+1 in a test."""

    engine: AsyncEngine
    statements: list[str] = field(default_factory=list)

    def _seen(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.statements.append(statement)

    @contextmanager
    def counting(self) -> Iterator[list[str]]:
        self.statements = []
        target = self.engine.sync_engine  # events live on the sync engine
        event.listen(target, "before_cursor_execute", self._seen)
        try:
            yield self.statements
        finally:
            event.remove(target, "before_cursor_execute", self._seen)


# --8<-- [end:counter]
