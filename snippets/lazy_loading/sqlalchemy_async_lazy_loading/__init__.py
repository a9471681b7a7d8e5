"""SQLAlchemy lazy loading under asyncio: load relationships up front.

An `AsyncSession` runs its queries in a greenlet that SQLAlchemy starts for
each awaited call. A relationship that is loaded lazily (``lazy="select"``,
the default) or an attribute expired by ``commit()`` would need a query on
plain attribute access, outside that greenlet, and SQLAlchemy raises
``MissingGreenlet`` instead.

* `books_selectinload` and `books_joinedload` load the relationship in the
  same awaited call (2 queries and 1 query, whatever the number of rows).
* `StrictAuthor` maps ``lazy="raise"``, so a forgotten loader option fails
  fast with a clear error; `books_strict` is the query that satisfies it.
* `books_awaitable_attrs` and `books_run_sync` keep lazy loading and pay one
  query per parent (N+1).
* `make_sessions` turns off ``expire_on_commit``; `QueryCounter` counts the
  statements an engine sends.
"""

from snippets.lazy_loading.sqlalchemy_async_lazy_loading.loading import (
    Books,
    QueryCounter,
    books_awaitable_attrs,
    books_joinedload,
    books_run_sync,
    books_selectinload,
    books_strict,
    make_sessions,
)
from snippets.lazy_loading.sqlalchemy_async_lazy_loading.models import (
    Author,
    Base,
    Book,
    StrictAuthor,
    StrictBase,
    StrictBook,
)

__all__ = [
    "Author",
    "Base",
    "Book",
    "Books",
    "QueryCounter",
    "StrictAuthor",
    "StrictBase",
    "StrictBook",
    "books_awaitable_attrs",
    "books_joinedload",
    "books_run_sync",
    "books_selectinload",
    "books_strict",
    "make_sessions",
]
