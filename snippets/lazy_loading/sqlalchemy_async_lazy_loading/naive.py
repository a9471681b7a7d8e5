"""What breaks: plain attribute access that needs a query, in async code."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from snippets.lazy_loading.sqlalchemy_async_lazy_loading.loading import Books
from snippets.lazy_loading.sqlalchemy_async_lazy_loading.models import (
    Author,
    StrictAuthor,
)

__all__ = ["books_lazy", "books_strict_forgotten", "rename_then_read"]


# --8<-- [start:lazy]
async def books_lazy(session: AsyncSession) -> Books:
    """Works in sync SQLAlchemy; under asyncio, a.books needs a query."""
    authors = await session.scalars(select(Author).order_by(Author.id))
    return {a.name: [b.title for b in a.books] for a in authors}


# --8<-- [end:lazy]


# --8<-- [start:expired]
async def rename_then_read(sessions: async_sessionmaker[AsyncSession]) -> str:
    """commit() expires the object; reading a column afterwards must query."""
    async with sessions() as session:
        author = await session.scalar(select(Author).order_by(Author.id))
        assert author is not None
        author.name = author.name.upper()
        await session.commit()
        return author.name


# --8<-- [end:expired]


async def books_strict_forgotten(session: AsyncSession) -> Books:
    """The strict mapping without its loader option."""
    authors = await session.scalars(select(StrictAuthor).order_by(StrictAuthor.id))
    return {a.name: [b.title for b in a.books] for a in authors}
