"""A PostgreSQL schema with authors and books for the SQLAlchemy asyncio page.

`database()` creates the tables in a schema of its own (through
``services.postgres()``), seeds them and yields an `AsyncEngine` that uses
psycopg 3's asyncio driver; `error_lines` turns an exception into the lines a
page shows, without the parts that change from run to run.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from snippets.lazy_loading.sqlalchemy_async_lazy_loading import (
    Author,
    Base,
    Book,
    make_sessions,
)
from snippets.support import services
from snippets.support.services import Postgres

__all__ = ["AUTHORS", "BOOKS_EACH", "add_authors", "database", "error_lines", "seeded"]

AUTHORS = 3
BOOKS_EACH = 2


async def add_authors(engine: AsyncEngine, first: int, count: int) -> None:
    """Authors ``first`` .. ``first + count - 1``, each with two books."""
    async with make_sessions(engine)() as session:
        for n in range(first, first + count):
            books = [Book(title=f"book {n}.{k}") for k in range(1, BOOKS_EACH + 1)]
            session.add(Author(name=f"author {n}", books=books))
        await session.commit()


@asynccontextmanager
async def seeded(pg: Postgres, authors: int = AUTHORS) -> AsyncIterator[AsyncEngine]:
    """An engine on `pg`'s schema, with the tables and `authors` authors."""
    url = make_url(pg.dsn).set(drivername="postgresql+psycopg")
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        await add_authors(engine, 1, authors)
        yield engine
    finally:
        await engine.dispose()


@asynccontextmanager
async def database(authors: int = AUTHORS) -> AsyncIterator[AsyncEngine]:
    """`seeded` in a schema of its own, dropped afterwards."""
    with services.postgres() as pg:
        async with seeded(pg, authors) as engine:
            yield engine


def error_lines(error: BaseException) -> list[str]:
    """The exception's class and the first and last lines of its message.

    The middle (the SQL and its parameters) names a bound parameter after an
    object's id, which differs from run to run.
    """
    name = f"{type(error).__module__}.{type(error).__qualname__}"
    lines = str(error).splitlines()
    kept = [f"{name}: {lines[0]}"]
    kept += [line for line in lines[1:] if line.startswith("(Background")]
    return [re.sub(r"0x[0-9a-f]+", "0x...", line) for line in kept]
