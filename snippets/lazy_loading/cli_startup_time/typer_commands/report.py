"""``orders report`` for Typer: builds a report with SQLAlchemy (a heavy import)."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy
import typer

__all__ = ["report"]


def report(month: Annotated[str, typer.Option(help="YYYY-MM")]) -> None:
    """Build the monthly orders report"""
    query = sqlalchemy.text("SELECT count(*) FROM orders WHERE month = :month")
    print(f"report for {month}: {query}")
