"""Tests for snippets/lazy_loading/sqlalchemy_async_lazy_loading, on PostgreSQL.

Every test runs SQLAlchemy 2.1's asyncio extension over psycopg 3's async
driver in a schema of its own. Statements are counted with an event listener
on the engine, so "N+1" and "2 queries" are measured, not assumed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pytest
import sqlalchemy
from sqlalchemy import event, select
from sqlalchemy.exc import InvalidRequestError, MissingGreenlet, StatementError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import joinedload

from snippets.lazy_loading.sqlalchemy_async_lazy_loading import (
    Author,
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
from snippets.support.lazy_loading_sqlalchemy import (
    AUTHORS,
    BOOKS_EACH,
    add_authors,
    seeded,
)
from tests.conftest import Postgres
from tools.errors import ErrorRecorder

T = TypeVar("T")
Loader = Callable[[AsyncSession], Awaitable[Books]]
GREENLET = (
    "greenlet_spawn has not been called; can't call await_() here. "
    "Was IO attempted in an unexpected place?"
)


def run(pg: Postgres, body: Callable[[AsyncEngine], Coroutine[Any, Any, T]]) -> T:
    """Run `body` with a seeded engine, under a deadline."""

    async def main() -> T:
        async with seeded(pg) as engine:
            return await asyncio.wait_for(body(engine), timeout=30)

    return asyncio.run(main())


async def counted(engine: AsyncEngine, loader: Loader) -> tuple[Books, int]:
    counter = QueryCounter(engine)
    with counter.counting() as statements:
        async with make_sessions(engine)() as session:
            books = await loader(session)
    return books, len(statements)


EXPECTED = {
    f"author {n}": [f"book {n}.{k}" for k in range(1, BOOKS_EACH + 1)]
    for n in range(1, AUTHORS + 1)
}

# --------------------------------------------------------------------------- #
# See it break
# --------------------------------------------------------------------------- #


def test_lazy_relationship_in_async_code_raises_missing_greenlet(
    postgres: Postgres, error_record: ErrorRecorder
) -> None:
    async def body(engine: AsyncEngine) -> None:
        counter = QueryCounter(engine)
        with counter.counting() as statements:
            async with make_sessions(engine)() as session:
                with pytest.raises(StatementError) as caught:
                    await books_lazy(session)
        error = caught.value
        # SQLAlchemy 2.1 wraps the MissingGreenlet: `except MissingGreenlet`
        # does not catch what the attribute access raises.
        assert isinstance(error.orig, MissingGreenlet)
        assert not isinstance(error, MissingGreenlet)
        assert str(error).startswith(f"(sqlalchemy.exc.MissingGreenlet) {GREENLET}")
        assert "https://sqlalche.me/e/21/xd2s" in str(error)
        assert len(statements) == 1  # the authors; the lazy SELECT never went out
        # The traceback shows both: the MissingGreenlet, then what wraps it.
        for key, raised in (("missing-greenlet", error.orig), ("wrapped", error)):
            assert isinstance(raised, BaseException)
            error_record(
                raised,
                id=key,
                component="SQLAlchemy",
                version=sqlalchemy.__version__,
            )

    run(postgres, body)


def test_awaitable_attrs_loads_once_then_plain_access_works(
    postgres: Postgres,
) -> None:
    async def body(engine: AsyncEngine) -> None:
        counter = QueryCounter(engine)
        async with make_sessions(engine)() as session:
            author = await session.scalar(select(Author).order_by(Author.id))
            assert author is not None
            with counter.counting() as statements:
                first = await author.awaitable_attrs.books
                again = author.books  # loaded now: no query, no greenlet needed
        assert [b.title for b in first] == [b.title for b in again]
        assert len(statements) == 1

    run(postgres, body)


def test_expired_attribute_after_commit_raises(postgres: Postgres) -> None:
    async def body(engine: AsyncEngine) -> None:
        with pytest.raises(StatementError) as caught:
            await rename_then_read(async_sessionmaker(engine))
        assert isinstance(caught.value.orig, MissingGreenlet)
        # The commit itself went through: the new name is in the database.
        async with make_sessions(engine)() as session:
            names = (await session.scalars(select(Author.name))).all()
        assert "AUTHOR 1" in names

    run(postgres, body)


def test_expire_on_commit_false_reads_without_a_query(postgres: Postgres) -> None:
    async def body(engine: AsyncEngine) -> None:
        counter = QueryCounter(engine)
        sessions = make_sessions(engine)
        async with sessions() as session:
            author = await session.scalar(select(Author).order_by(Author.id))
            assert author is not None
            author.name = "renamed"
            await session.commit()
            with counter.counting() as statements:
                assert author.name == "renamed"
        assert statements == []
        assert await rename_then_read(sessions) == "RENAMED"

    run(postgres, body)


def test_lazy_raise_fails_fast_without_sql(postgres: Postgres) -> None:
    async def body(engine: AsyncEngine) -> None:
        counter = QueryCounter(engine)
        with counter.counting() as statements:
            async with make_sessions(engine)() as session:
                with pytest.raises(InvalidRequestError) as caught:
                    await books_strict_forgotten(session)
        assert str(caught.value) == (
            "'StrictAuthor.books' is not available due to lazy='raise'"
        )
        assert not isinstance(caught.value, StatementError)
        assert len(statements) == 1

    run(postgres, body)


# --------------------------------------------------------------------------- #
# The fixes, and what each costs in queries
# --------------------------------------------------------------------------- #

CONSTANT = {books_selectinload: 2, books_joinedload: 1, books_strict: 2}
PER_PARENT = (books_awaitable_attrs, books_run_sync)


@pytest.mark.parametrize("loader", [*CONSTANT, *PER_PARENT], ids=lambda f: f.__name__)
def test_each_fix_loads_every_book(postgres: Postgres, loader: Loader) -> None:
    books, _ = run(postgres, lambda engine: counted(engine, loader))
    assert books == EXPECTED


def test_loader_options_stay_constant_lazy_loads_grow(postgres: Postgres) -> None:
    async def body(engine: AsyncEngine) -> dict[str, list[int]]:
        counts: dict[str, list[int]] = {}
        for authors in (AUTHORS, AUTHORS + 7):
            if authors > AUTHORS:
                await add_authors(engine, AUTHORS + 1, authors - AUTHORS)
            for loader in [*CONSTANT, *PER_PARENT]:
                books, sent = await counted(engine, loader)
                assert len(books) == authors
                counts.setdefault(loader.__name__, []).append(sent)
        return counts

    counts = run(postgres, body)
    for loader, expected in CONSTANT.items():
        assert counts[loader.__name__] == [expected, expected]
    for per_parent in PER_PARENT:
        assert counts[per_parent.__name__] == [1 + AUTHORS, 1 + AUTHORS + 7]


def test_counter_stops_counting_after_its_block(postgres: Postgres) -> None:
    async def body(engine: AsyncEngine) -> None:
        counter = QueryCounter(engine)
        with counter.counting() as statements:
            await counted(engine, books_selectinload)
        await counted(engine, books_selectinload)
        assert len(statements) == 2

    run(postgres, body)


def test_joinedload_of_a_collection_needs_unique(postgres: Postgres) -> None:
    async def body(engine: AsyncEngine) -> None:
        async with make_sessions(engine)() as session:
            result = await session.scalars(
                select(Author).options(joinedload(Author.books))
            )
            with pytest.raises(InvalidRequestError) as caught:
                result.all()
        assert str(caught.value) == (
            "The unique() method must be invoked on this Result, as it contains "
            "results that include joined eager loads against collections"
        )

    run(postgres, body)


def test_listeners_go_on_the_sync_engine() -> None:
    engine = create_async_engine("postgresql+psycopg://127.0.0.1/unused")
    counter = QueryCounter(engine)
    with pytest.raises(NotImplementedError) as caught:
        event.listen(engine, "before_cursor_execute", counter._seen)
    assert str(caught.value).startswith(
        "asynchronous events are not implemented at this time."
    )
    assert "AsyncEngine.sync_engine" in str(caught.value)
