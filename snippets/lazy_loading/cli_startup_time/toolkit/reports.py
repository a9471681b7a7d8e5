"""A heavy submodule: imports SQLAlchemy at the top."""

from __future__ import annotations

import sqlalchemy

__all__ = ["build_report"]


def build_report(month: str) -> str:
    query = sqlalchemy.text("SELECT count(*) FROM orders WHERE month = :month")
    return f"{query} with month={month}"
