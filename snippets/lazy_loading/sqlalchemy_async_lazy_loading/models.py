"""The mapped classes: authors and their books, lazy by default and strict."""

from __future__ import annotations

from sqlalchemy import ForeignKey
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = ["Author", "Base", "Book", "StrictAuthor", "StrictBase", "StrictBook"]


# --8<-- [start:models]
class Base(AsyncAttrs, DeclarativeBase):
    """AsyncAttrs adds `awaitable_attrs` to every mapped class."""


class Author(Base):
    """An author; `books` loads lazily, on first access (the default)."""

    __tablename__ = "author"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    # lazy="select" is the default: the first access runs a SELECT, then.
    books: Mapped[list[Book]] = relationship(
        back_populates="author", order_by="Book.id"
    )


class Book(Base):
    """A book and its author."""

    __tablename__ = "book"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str]
    author_id: Mapped[int] = mapped_column(ForeignKey("author.id"))
    author: Mapped[Author] = relationship(back_populates="books")


# --8<-- [end:models]


# --8<-- [start:strict]
class StrictBase(AsyncAttrs, DeclarativeBase):
    """The same tables, mapped so that no relationship loads implicitly."""


class StrictAuthor(StrictBase):
    """The author table again; `books` raises unless a loader option loaded it."""

    __tablename__ = "author"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    # An access that was not loaded up front raises instead of querying.
    books: Mapped[list[StrictBook]] = relationship(
        lazy="raise", order_by="StrictBook.id"
    )


class StrictBook(StrictBase):
    """The book table, for `StrictAuthor.books`."""

    __tablename__ = "book"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str]
    author_id: Mapped[int] = mapped_column(ForeignKey("author.id"))


# --8<-- [end:strict]
