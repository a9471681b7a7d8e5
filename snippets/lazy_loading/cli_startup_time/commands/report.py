"""``orders report``: builds a report with SQLAlchemy (a heavy import)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import click
import sqlalchemy

__all__ = ["HELP", "add_arguments", "command", "main", "run"]

HELP = "Build the monthly orders report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--month", required=True, help="YYYY-MM")


def run(args: argparse.Namespace) -> int:
    query = sqlalchemy.text("SELECT count(*) FROM orders WHERE month = :month")
    print(f"report for {args.month}: {query}")
    return 0


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="orders report", description=HELP)
    add_arguments(parser)
    return run(parser.parse_args(argv))


@click.command(help=HELP)
@click.option("--month", required=True, help="YYYY-MM")
def command(month: str) -> None:
    run(argparse.Namespace(month=month))
